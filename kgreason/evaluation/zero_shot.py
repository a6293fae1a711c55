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
        builder = self.builder
        prefixes = [builder.prefix_ids(example.question, list(example.choice_texts)) for example in examples]
        from kgreason.model.inputs import pad_sequences

        prefix_ids, prefix_mask = pad_sequences(prefixes, builder.pad_id)
        num_choices = max(len(example.choices) for example in examples)
        tokenised = [[builder.choice_ids(text) for text in example.choice_texts] for example in examples]
        length = max(len(ids) for options in tokenised for ids in options)
        choice_ids = torch.full((len(examples), num_choices, length), builder.pad_id, dtype=torch.long)
        choice_mask = torch.zeros_like(choice_ids)
        choice_valid = torch.zeros((len(examples), num_choices), dtype=torch.bool)
        for row, options in enumerate(tokenised):
            for column, ids in enumerate(options):
                choice_ids[row, column, : len(ids)] = torch.tensor(ids)
                choice_mask[row, column, : len(ids)] = 1
                choice_valid[row, column] = True

        no_latents = torch.zeros((len(examples), 0, self.hidden_size), dtype=self.decoder.dtype, device=self.device)
        scores = score_choices(
            self.decoder, prefix_ids.to(self.device), prefix_mask.to(self.device), no_latents,
            torch.tensor(builder.suffix_ids, device=self.device), choice_ids.to(self.device),
            choice_mask.to(self.device), choice_valid.to(self.device),
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
