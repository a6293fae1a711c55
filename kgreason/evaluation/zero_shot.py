"""The decoder alone: the reference that shows what the graph and the latent vectors add.

It reads the same prompt as the reasoner with no latent vectors between the markers
("Question: ...\\nHint:" then "\\nAnswer:") and scores each choice by the same length-normalised
log-likelihood, so the two differ only in the K latent vectors.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from tqdm import tqdm

from kgreason.config import Config
from kgreason.model.backbones import load_backbone
from kgreason.model.graphs import context_graph
from kgreason.model.inputs import InputBuilder
from kgreason.model.predictor import Prediction, iter_batches
from kgreason.model.scoring import score_choices
from kgreason.runtime import cache_dir, resolve_device

logger = logging.getLogger(__name__)


class ZeroShotScorer:
    """Score multiple-choice questions with the frozen decoder and no latent vectors."""

    def __init__(self, config: Config):
        self.config = config
        self.device = resolve_device(config.runtime.device)
        backbone = load_backbone(config.model.decoder, config.model.gguf_file, config.model.dtype,
                                 cache_dir(config.data.cache_dir))
        self.backbone_id = backbone.backbone_id
        self.decoder = backbone.model.to(self.device).eval()
        self.hidden_size = backbone.hidden_size
        self.builder = InputBuilder.from_config(backbone.tokenizer, config)

    @torch.no_grad()
    def predict(self, examples: Sequence, batch_size: int = 16, progress: bool = False) -> list[Prediction]:
        """One Prediction per example (latents empty), in order."""
        predictions = []
        batches = list(iter_batches(list(examples), batch_size))
        for chunk in tqdm(batches, desc="zero-shot scoring", disable=not progress, leave=False):
            predictions.extend(self._predict_batch(chunk))
        return predictions

    def _predict_batch(self, examples: Sequence) -> list[Prediction]:
        # The decoder alone reads no graph; each question gets a one-node placeholder so that the
        # reasoner's own batch layout (prompt, choice packing) is reused unchanged.
        placeholders = [context_graph(torch.zeros(1)) for _ in examples]
        batch = self.builder.collate([example.question for example in examples],
                                     [list(example.choice_texts) for example in examples], placeholders)
        batch = batch.to(self.device)

        no_latents = torch.zeros((len(examples), 0, self.hidden_size), dtype=self.decoder.dtype, device=self.device)
        scores = score_choices(
            self.decoder, batch.prefix_ids, batch.prefix_mask, no_latents, batch.suffix_ids,
            batch.choice_ids, batch.choice_mask, batch.choice_valid,
        ).scores.float().cpu()

        predictions = []
        for row, example in enumerate(examples):
            row_scores = scores[row, : len(example.choices)]
            predictions.append(Prediction(
                id=example.id, question=example.question, choices=list(example.choice_texts),
                choice_scores=row_scores.tolist(), probabilities=torch.softmax(row_scores, 0).tolist(),
                prediction=int(row_scores.argmax()), latents=torch.zeros(0, self.hidden_size),
                latent_norms=[], num_nodes=0,
            ))
        return predictions
