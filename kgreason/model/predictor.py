"""Inference API: load a trained reasoner, score multiple-choice questions, write free-form answers.

    predictor = Predictor.from_checkpoint("runs/csqa/best")          # None: the shipped default model
    predictions = predictor.predict(examples)                       # graphs retrieved unless given
    text = predictor.generate("Where would you most likely find a jellyfish?")
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch_geometric.data import Data
from tqdm import tqdm

from kgreason.config import Config, config_from_dict
from kgreason.errors import KgreasonError
from kgreason.model.backbones import Backbone, load_backbone
from kgreason.model.checkpoint import (
    DEFAULT_MODEL_DIR, apply_overrides, check_architecture, check_backbone, check_schema, load_weights, read_metadata,
)
from kgreason.model.graphs import GraphSource, graph_source_from_config
from kgreason.model.inputs import InputBuilder
from kgreason.model.reasoner import LatentReasoner
from kgreason.runtime import cache_dir, resolve_device

logger = logging.getLogger(__name__)

@dataclass
class Prediction:
    """The reasoner's output for one question."""

    id: str | None
    question: str
    choices: list[str]
    choice_scores: list[float]
    """Length-normalised log-likelihood of each choice."""

    probabilities: list[float]
    """Softmax of ``choice_scores``."""

    prediction: int | None
    """Index of the best-scoring choice; None for a question without choices."""

    latents: torch.Tensor
    """[K, H] the latent vectors inserted into the decoder (float32, CPU)."""

    latent_norms: list[float]
    num_nodes: int
    readout: torch.Tensor | None = None
    """[K, D] each latent mapped into the sentence-encoder space by the readout head, L2-normalised;
    nearest neighbours among encoded explanations or graph facts say what a latent stands for.
    None when the model has no readout head (distill.mode codi or none)."""

    question_concepts: list[str] = field(default_factory=list)
    choice_concepts: list[list[str]] = field(default_factory=list)

    @property
    def predicted_text(self) -> str | None:
        return None if self.prediction is None else self.choices[self.prediction]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (the latent vectors themselves are left out; their norms stay)."""
        return {
            "id": self.id, "question": self.question, "choices": self.choices,
            "choice_scores": self.choice_scores, "probabilities": self.probabilities,
            "prediction": self.prediction, "predicted_text": self.predicted_text,
            "latent_norms": self.latent_norms, "num_nodes": self.num_nodes,
            "question_concepts": self.question_concepts, "choice_concepts": self.choice_concepts,
        }


@dataclass
class Query:
    """A question without a dataset record, in the shape ``Predictor.predict`` reads."""

    question: str
    choice_texts: list[str]
    id: str | None = None


def iter_batches(items: Sequence, batch_size: int):
    for start in range(0, len(items), batch_size):
        yield items[start: start + batch_size]


class Predictor:
    """A reasoner ready for inference on one device, with its tokenizer layout and graph source."""

    def __init__(self, reasoner: LatentReasoner, config: Config, graph_source: GraphSource | None = None,
                 metadata: dict[str, Any] | None = None, device: torch.device | str = "cpu"):
        self.reasoner = reasoner.to(device).eval()
        self.config = config
        self.device = torch.device(device)
        self.builder = InputBuilder.from_config(reasoner.tokenizer, config)
        self._graph_source = graph_source
        self.metadata = metadata or {}

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, overrides: list[str] | dict[str, Any] | None = None,
                        graph_source: GraphSource | None = None, backbone: Backbone | None = None) -> "Predictor":
        """Load a checkpoint folder (None: the shipped default model) with optional config overrides.

        Overrides may change runtime and evaluation settings but not the architecture (decoder, K, GNN
        sizes). A checkpoint that does not fit the decoder or graph schema in use raises
        CheckpointMismatchError naming both sides.
        """
        folder = Path(path) if path is not None else DEFAULT_MODEL_DIR
        if path is None and not (folder / "checkpoint.json").is_file():
            raise KgreasonError(
                f"the default model is not installed at {folder}; pass a checkpoint folder written by "
                "python -m kgreason.train (for example runs/csqa/best)"
            )
        metadata = read_metadata(folder)
        stored = config_from_dict(metadata["config"])
        config = apply_overrides(stored, overrides)
        check_architecture(metadata, config, folder)

        graph_source = graph_source or graph_source_from_config(config)
        check_schema(metadata, graph_source.schema_hash, graph_source.num_relations, folder)

        backbone = backbone or load_backbone(config.model.decoder, config.model.gguf_file, config.model.dtype,
                                             cache_dir(config.data.cache_dir))
        check_backbone(metadata, backbone.backbone_id, folder)

        reasoner = LatentReasoner(config, backbone, graph_source.num_relations, metadata["node_feature_dim"])
        reasoner.load_trainable_state_dict(load_weights(folder))
        device = resolve_device(config.runtime.device)
        logger.info("loaded checkpoint %s (K=%d, decoder %s) on %s", folder, config.model.num_latents,
                    backbone.backbone_id, device)
        return cls(reasoner, config, graph_source, metadata, device)

    @property
    def graph_source(self) -> GraphSource:
        if self._graph_source is None:
            self._graph_source = graph_source_from_config(self.config)
        return self._graph_source

    @torch.no_grad()
    def predict(self, examples: Sequence, graphs: Sequence[Data] | None = None, batch_size: int | None = None,
                progress: bool = False) -> list[Prediction]:
        """Score the choices of ``examples`` (objects with ``question``, ``choice_texts`` and ``id``).

        ``graphs`` gives one question graph per example; None retrieves them. Returns one Prediction per
        example, in order. Batches are formed from questions of similar length for throughput.
        """
        if not examples:
            return []
        if graphs is None:
            graphs = self.graph_source.graphs_for(examples, progress=progress)
        if len(graphs) != len(examples):
            raise ValueError(f"got {len(graphs)} graphs for {len(examples)} examples; give one graph per example")

        batch_size = batch_size or self.config.train.eval_batch_size
        order = sorted(range(len(examples)), key=lambda index: len(examples[index].question))
        results: list[Prediction | None] = [None] * len(examples)
        batches = list(iter_batches(order, batch_size))
        for indices in tqdm(batches, desc="scoring", disable=not progress, leave=False):
            chosen = [examples[index] for index in indices]
            for index, prediction in zip(indices, self._predict_batch(chosen, [graphs[index] for index in indices])):
                results[index] = prediction
        return results

    def _predict_batch(self, examples: Sequence, graphs: Sequence[Data]) -> list[Prediction]:
        batch = self.builder.collate(
            [example.question for example in examples], [list(example.choice_texts) for example in examples],
            graphs, ids=[getattr(example, "id", None) for example in examples],
        ).to(self.device)
        output = self.reasoner(batch)
        scores = output.choice_scores.float().cpu()
        readout = None
        if self.reasoner.readout is not None:
            readout = torch.nn.functional.normalize(self.reasoner.readout(output.latents.float()), dim=-1).cpu()
        predictions = []
        for row, (example, graph) in enumerate(zip(examples, graphs)):
            count = len(example.choice_texts)
            row_scores = scores[row, :count]
            probabilities = torch.softmax(row_scores, dim=0) if count else row_scores
            predictions.append(Prediction(
                id=getattr(example, "id", None), question=example.question, choices=list(example.choice_texts),
                choice_scores=row_scores.tolist(), probabilities=probabilities.tolist(),
                prediction=int(row_scores.argmax()) if count else None,
                latents=output.latents[row].detach().float().cpu(),
                latent_norms=output.latent_norms[row].cpu().tolist(), num_nodes=int(graph.num_nodes),
                readout=None if readout is None else readout[row],
                question_concepts=list(getattr(graph, "question_concepts", []) or []),
                choice_concepts=[list(c) for c in (getattr(graph, "choice_concepts", []) or [])],
            ))
        return predictions

    def score(self, question: str, choices: Sequence[str], graph: Data | None = None) -> Prediction:
        """Score the ``choices`` of one question (its graph is retrieved when not given)."""
        if not question.strip():
            raise ValueError("the question is empty")
        if not choices:
            raise ValueError("no choices to score; use generate() for a free-form answer")
        example = Query(question=question, choice_texts=list(choices))
        graphs = [graph] if graph is not None else [self.graph_source.graph_for(question, list(choices))]
        return self.predict([example], graphs)[0]

    @torch.no_grad()
    def generate(self, question: str, graph: Data | None = None, choices: Sequence[str] = (),
                 max_new_tokens: int | None = None) -> str:
        """Write a free-form answer sentence to ``question`` through its graph latents."""
        if not question.strip():
            raise ValueError("the question is empty")
        graph = graph if graph is not None else self.graph_source.graph_for(question, list(choices))
        batch = self.builder.collate([question], [list(choices)], [graph]).to(self.device)
        return self.reasoner.generate(batch, max_new_tokens)[0]


def accuracy(predictions: Sequence[Prediction], examples: Sequence) -> float:
    """Share of examples whose predicted choice index equals ``example.answer_index``."""
    scored = [(p.prediction, e.answer_index) for p, e in zip(predictions, examples) if e.answer_index is not None]
    if not scored:
        return float("nan")
    return sum(predicted == gold for predicted, gold in scored) / len(scored)
