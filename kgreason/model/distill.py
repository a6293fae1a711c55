"""Explanation distillation: targets for the latent vectors and the losses that pull them there.

segments mode: the frozen sentence encoder reads the explanation. Its token states (special
tokens dropped) are split into K contiguous, ordered segments, and each segment is mean-pooled and
L2-normalised, so latent k stands for the k-th part of the written reasoning. A readout head maps
each latent into the encoder space. Targets are computed once per text list and cached on disk,
keyed by the SHA-256 of the texts, the encoder name and K.

codi mode (after CODI, Shen et al. 2025): the teacher is the decoder's hidden states at the answer
position when it reads the question plus the written explanation; the student is the same
position when it reads the question plus the latents. See ``scoring.teacher_hidden_states``.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from kgreason.io import atomic_save_array
from kgreason.runtime import cache_dir

logger = logging.getLogger(__name__)

TARGET_VERSION = "segments-v1"
"""Bump when the way targets are computed changes, so stale cache files are not read."""


def segment_bounds(num_tokens: int, num_segments: int) -> list[tuple[int, int]]:
    """Split ``num_tokens`` positions into ``num_segments`` contiguous, non-empty ranges in order.

    With fewer tokens than segments, neighbouring segments share a token.
    """
    bounds = []
    for index in range(num_segments):
        start = min(index * num_tokens // num_segments, num_tokens - 1)
        end = max((index + 1) * num_tokens // num_segments, start + 1)
        bounds.append((start, end))
    return bounds


def pool_segments(token_states: torch.Tensor, num_segments: int) -> torch.Tensor:
    """Mean-pool ``[T, D]`` token states into ``[K, D]`` unit vectors over K ordered segments."""
    pooled = torch.stack([token_states[start:end].mean(0) for start, end in segment_bounds(len(token_states), num_segments)])
    return F.normalize(pooled, dim=-1)


def compute_segment_targets(texts: Sequence[str], num_segments: int, encoder_name: str,
                            batch_size: int = 64) -> np.ndarray:
    """Segment targets ``[len(texts), K, D]`` (float32) for non-empty ``texts``."""
    from kgreason.embedding import load_sentence_encoder

    encoder = load_sentence_encoder(encoder_name)
    # sentence-transformers 6 renamed get_sentence_embedding_dimension to get_embedding_dimension.
    dimension_of = getattr(encoder, "get_embedding_dimension", None) or encoder.get_sentence_embedding_dimension
    dimension = dimension_of()
    targets = np.zeros((len(texts), num_segments, dimension), dtype=np.float32)
    if not texts:
        return targets

    states = encoder.encode(list(texts), output_value="token_embeddings", batch_size=batch_size,
                            convert_to_numpy=False, show_progress_bar=len(texts) > 2 * batch_size)
    for row, token_states in enumerate(states):
        # The first and last positions are the encoder's [CLS] and [SEP] tokens.
        words = token_states[1:-1] if len(token_states) > 2 else token_states
        targets[row] = pool_segments(words.float().cpu(), num_segments).numpy()
    return targets


def segment_targets(texts: Sequence[str], num_segments: int, encoder_name: str,
                    cache: str | None = None) -> np.ndarray:
    """Cached ``compute_segment_targets``: read ``<cache>/distill/...npy`` when the same texts were seen."""
    digest = hashlib.sha256()
    for text in (TARGET_VERSION, encoder_name, str(num_segments), *texts):
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")
    safe_name = re.sub(r"[^A-Za-z0-9._-]+", "_", encoder_name)
    path = cache_dir(cache) / "distill" / f"{safe_name}-K{num_segments}-{digest.hexdigest()[:24]}.npy"

    if path.is_file():
        targets = np.load(path, allow_pickle=False)
        if targets.shape[:2] == (len(texts), num_segments):
            return targets
        logger.warning("ignoring %s: shape %s does not match %d texts and K=%d", path, targets.shape, len(texts), num_segments)

    logger.info("encoding %d explanations into %d segment targets each", len(texts), num_segments)
    targets = compute_segment_targets(texts, num_segments, encoder_name)
    atomic_save_array(path, targets)
    return targets


class ReadoutHead(nn.Module):
    """Map latents ``[B, K, decoder_hidden]`` into the sentence-encoder space ``[B, K, D]``."""

    def __init__(self, decoder_hidden: int, target_dim: int):
        super().__init__()
        self.layers = nn.Sequential(
            nn.LayerNorm(decoder_hidden), nn.Linear(decoder_hidden, decoder_hidden), nn.GELU(),
            nn.Linear(decoder_hidden, target_dim),
        )

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.layers(latents)


def vector_distance(predicted: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-vector distance over the last dimension: ``cosine`` = 1 - cos, ``nmse`` = |p - t|^2 / |t|^2."""
    if kind == "cosine":
        return 1.0 - F.cosine_similarity(predicted, target, dim=-1)
    if kind == "nmse":
        return (predicted - target).pow(2).sum(-1) / target.pow(2).sum(-1).clamp(min=1e-6)
    raise ValueError(f"unknown distillation distance {kind!r}; use cosine or nmse")


def info_nce(predicted: torch.Tensor, target: torch.Tensor, temperature: float) -> torch.Tensor:
    """In-batch contrastive loss per slot: readout ``[N, K, D]`` must pick its own target among the N.

    Returns the mean over slots and examples; 0 when N < 2.
    """
    if predicted.shape[0] < 2:
        return predicted.sum() * 0.0
    predicted = F.normalize(predicted, dim=-1).transpose(0, 1)
    target = F.normalize(target, dim=-1).transpose(0, 1)
    logits = predicted @ target.transpose(1, 2) / temperature
    labels = torch.arange(logits.shape[1], device=logits.device).expand(logits.shape[0], -1)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))


def segments_loss(readout: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, kind: str,
                  contrastive: bool, temperature: float) -> torch.Tensor:
    """Distillation loss of readout ``[B, K, D]`` against targets ``[B, K, D]`` for rows where ``mask`` [B]."""
    if not bool(mask.any()):
        return readout.sum() * 0.0
    predicted, wanted = readout[mask], targets[mask].to(readout.dtype)
    loss = vector_distance(predicted, wanted, kind).mean()
    if contrastive:
        loss = loss + info_nce(predicted, wanted, temperature)
    return loss


def codi_loss(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor, kind: str) -> torch.Tensor:
    """Match student hidden states ``[B, layers + 1, H]`` to the teacher's at every layer after the embeddings."""
    if not bool(mask.any()):
        return student.sum() * 0.0
    return vector_distance(student[mask][:, 1:], teacher[mask][:, 1:].to(student.dtype), kind).mean()
