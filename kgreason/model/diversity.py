"""Latent diversity: how much the latent vectors differ between questions and between slots.

A reasoner whose latents have collapsed to one constant vector behaves like prompt tuning: the
decoder then reads the same soft prompt for every question, and the graph cannot matter. Two
numbers make this visible, both mean cosine similarities (1 means identical directions):

- across questions: for each slot k, the mean cosine between the k-th latents of two different
  questions, averaged over the K slots;
- across slots: for each question, the mean cosine between two different slots of that question,
  averaged over the questions.

For N unit vectors u_1..u_N the mean over ordered pairs i != j is computed in O(N) from

    sum_{i != j} u_i . u_j = |sum_i u_i|^2 - N,   mean = (|sum_i u_i|^2 - N) / (N (N - 1)),

so a whole dev set is measured without the N x N similarity matrix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F


@dataclass(frozen=True)
class LatentDiversity:
    """Mean pairwise cosine similarities of latent vectors; NaN where fewer than two vectors exist."""

    across_questions: float
    """Mean cosine between the same slot of two different questions."""

    across_slots: float
    """Mean cosine between two different slots of one question."""


def mean_pairwise_cosine(vectors: torch.Tensor) -> torch.Tensor:
    """Compute the mean cosine over ordered pairs of distinct rows, along dimension -2.

    ``vectors`` [..., N, H] gives ``[...]``; NaN when N < 2. A zero vector counts as cosine 0 with
    every other vector.
    """
    count = vectors.shape[-2]
    if count < 2:
        return torch.full(vectors.shape[:-2], float("nan"), dtype=torch.float64)
    units = F.normalize(vectors.double(), dim=-1)
    squared_sum = units.sum(-2).pow(2).sum(-1)
    self_terms = units.pow(2).sum((-2, -1))
    return (squared_sum - self_terms) / (count * (count - 1))


def latent_diversity(latents: torch.Tensor) -> LatentDiversity:
    """Measure the diversity of latents ``[B, K, H]`` (B questions, K slots), as the module docstring defines it."""
    if latents.dim() != 3:
        raise ValueError(f"latents must have shape [questions, slots, hidden], got {tuple(latents.shape)}")
    latents = latents.detach().cpu()
    across_questions = mean_pairwise_cosine(latents.transpose(0, 1)).mean()
    across_slots = mean_pairwise_cosine(latents).mean()
    return LatentDiversity(float(across_questions), float(across_slots))


def prediction_diversity(predictions) -> LatentDiversity:
    """Measure the latent diversity of predictions whose ``latents`` are ``[K, H]`` each."""
    return latent_diversity(torch.stack([prediction.latents for prediction in predictions]))


def nan_to_none(value: float) -> float | None:
    """Return ``value``, or None in place of NaN, so that JSON records an undefined diversity as null."""
    return None if math.isnan(value) else value
