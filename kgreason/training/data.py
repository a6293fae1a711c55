"""Training data: examples with their question graphs and explanation targets, cut into batches."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch_geometric.data import Data

from kgreason.config import Config
from kgreason.model.distill import segment_targets
from kgreason.model.inputs import InputBuilder, ReasonerBatch

logger = logging.getLogger(__name__)


@dataclass
class QuestionSet:
    """Examples in a fixed order with one question graph each and, when distilling, their targets."""

    examples: list
    graphs: list[Data]
    targets: np.ndarray | None = None
    """[N, K, D] segment targets (zeros where ``has_explanation`` is False)."""

    has_explanation: np.ndarray | None = None
    """[N] bool."""

    def __len__(self) -> int:
        return len(self.examples)

    def batch(self, indices: Sequence[int], builder: InputBuilder, distill_mode: str) -> ReasonerBatch:
        examples = [self.examples[index] for index in indices]
        explanations = [example.explanation for example in examples] if distill_mode == "codi" else None
        targets = mask = None
        if self.has_explanation is not None:
            mask = torch.from_numpy(self.has_explanation[list(indices)])
            if self.targets is not None:
                targets = torch.from_numpy(self.targets[list(indices)])
        return builder.collate(
            [example.question for example in examples], [list(example.choice_texts) for example in examples],
            [self.graphs[index] for index in indices], labels=[example.answer_index for example in examples],
            ids=[example.id for example in examples], targets=targets, target_mask=mask,
            explanations=explanations,
        )


def build_question_set(examples: list, graphs: list[Data], config: Config, with_targets: bool) -> QuestionSet:
    """Attach graphs and, for ``with_targets``, the explanation targets that ``distill.mode`` needs."""
    if len(graphs) != len(examples):
        raise ValueError(f"got {len(graphs)} question graphs for {len(examples)} examples")
    question_set = QuestionSet(examples=examples, graphs=graphs)
    mode = config.distill.mode
    if not with_targets or mode == "none":
        return question_set

    has_explanation = np.array([bool(example.explanation and example.explanation.strip()) for example in examples])
    question_set.has_explanation = has_explanation
    logger.info("%d of %d training questions have an explanation", int(has_explanation.sum()), len(examples))
    if mode == "segments":
        texts = [example.explanation for example, present in zip(examples, has_explanation) if present]
        encoded = segment_targets(texts, config.model.num_latents, config.encoder.name, config.data.cache_dir)
        targets = np.zeros((len(examples), config.model.num_latents, encoded.shape[-1]), dtype=np.float32)
        targets[has_explanation] = encoded
        question_set.targets = targets
    return question_set


def epoch_order(num_examples: int, epoch: int, seed: int, rank: int, world_size: int) -> list[int]:
    """This process's example order for ``epoch``: a seeded permutation, padded to a multiple of the world size.

    The order depends only on (seed, epoch), never on the global RNG state, so a resumed run sees
    the same batches.
    """
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(num_examples, generator=generator).tolist()
    padding = (-len(order)) % world_size
    order += order[:padding]
    return order[rank::world_size]
