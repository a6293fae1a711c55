"""Latent diversity: the O(N) mean pairwise cosine against the explicit pairwise loop."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from kgreason.model.diversity import latent_diversity, mean_pairwise_cosine


def pairwise_loop(vectors: torch.Tensor) -> float:
    """Compute the mean cosine over ordered pairs i != j of the rows of ``vectors`` [N, H], one pair at a time."""
    values = [
        float(F.cosine_similarity(vectors[i], vectors[j], dim=0))
        for i in range(len(vectors)) for j in range(len(vectors)) if i != j
    ]
    return sum(values) / len(values)


def test_mean_pairwise_cosine_equals_pair_loop():
    generator = torch.Generator().manual_seed(3)
    vectors = torch.randn(7, 16, generator=generator, dtype=torch.float64) + 0.5

    assert float(mean_pairwise_cosine(vectors)) == pytest.approx(pairwise_loop(vectors), abs=1e-9)


def test_mean_pairwise_cosine_known_values():
    same = torch.tensor([[1.0, 2.0], [2.0, 4.0], [0.5, 1.0]])
    orthogonal = torch.eye(4)
    opposite = torch.tensor([[1.0, 0.0], [-3.0, 0.0]])

    assert float(mean_pairwise_cosine(same)) == pytest.approx(1.0)
    assert float(mean_pairwise_cosine(orthogonal)) == pytest.approx(0.0)
    assert float(mean_pairwise_cosine(opposite)) == pytest.approx(-1.0)
    assert math.isnan(float(mean_pairwise_cosine(torch.ones(1, 3))))


def test_latent_diversity_questions_and_slots():
    generator = torch.Generator().manual_seed(5)
    latents = torch.randn(5, 3, 8, generator=generator, dtype=torch.float64)

    diversity = latent_diversity(latents)

    across_questions = sum(pairwise_loop(latents[:, slot]) for slot in range(3)) / 3
    across_slots = sum(pairwise_loop(latents[question]) for question in range(5)) / 5
    assert diversity.across_questions == pytest.approx(across_questions, abs=1e-9)
    assert diversity.across_slots == pytest.approx(across_slots, abs=1e-9)


def test_collapsed_latents_read_one():
    # One soft prompt for every question: the same K vectors repeated B times.
    prompt = torch.randn(4, 32)
    latents = prompt.unsqueeze(0).repeat(6, 1, 1)

    diversity = latent_diversity(latents)

    assert diversity.across_questions == pytest.approx(1.0)
    assert diversity.across_slots < 0.9


def test_one_question_or_one_slot_is_nan():
    assert math.isnan(latent_diversity(torch.randn(1, 4, 8)).across_questions)
    assert math.isnan(latent_diversity(torch.randn(4, 1, 8)).across_slots)
    with pytest.raises(ValueError, match="questions, slots, hidden"):
        latent_diversity(torch.randn(4, 8))
