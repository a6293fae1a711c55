"""What the model "thought", in words: grounded concepts, graph paths and the neighbours of each latent.

Three views of one answer:

- the concepts grounded in the question and in each choice;
- the graph paths (at most 2 hops) from a question concept to a concept of the answer, written out
  with the relation templates and ranked by the cosine between the path sentence and
  "question answer" in the sentence-encoder space;
- for each latent vector, its readout (the head trained to map latents onto explanation segments)
  compared by cosine with human explanations (CoS-E, the IH-train questions, in a faiss index) and
  with the facts of the question's subgraph.

The latent neighbours need a readout head (``distill.mode=segments``); without one the explanation
says so and keeps the other two views.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

logger = logging.getLogger(__name__)

MAX_FACTS = 1500
"""Subgraph edges rendered and embedded per question, the most relevant first."""


@dataclass
class ScoredText:
    text: str
    score: float
    """Cosine similarity in the sentence-encoder space, in [-1, 1]."""


@dataclass
class LatentExplanation:
    index: int
    norm: float
    explanations: list[ScoredText] = field(default_factory=list)
    facts: list[ScoredText] = field(default_factory=list)


@dataclass
class Explanation:
    question_concepts: list[str]
    choice_concepts: list[list[str]]
    paths: list[ScoredText]
    latents: list[LatentExplanation]
    notes: list[str]

    def to_dict(self) -> dict:
        def texts(items):
            return [{"text": item.text, "score": round(item.score, 4)} for item in items]

        return {
            "question_concepts": self.question_concepts,
            "choice_concepts": self.choice_concepts,
            "paths": texts(self.paths),
            "latents": [
                {"index": latent.index, "norm": round(latent.norm, 4),
                 "explanations": texts(latent.explanations), "facts": texts(latent.facts)}
                for latent in self.latents
            ],
            "notes": self.notes,
        }


class Explainer:
    """Build Explanations for a Predictor whose graphs come from a graph store."""

    def __init__(self, predictor, top_k: int = 3):
        self.predictor = predictor
        self.top_k = top_k
        source = predictor.graph_source
        self.retriever = getattr(source, "retriever", None)
        self._index = None
        self._explanation_texts: list[str] = []

    # --- the explanation index -----------------------------------------------------------------

    def _embed(self, texts: list[str]) -> np.ndarray:
        if self.retriever is not None:
            vectors = np.asarray(self.retriever.cache.embed(texts), dtype=np.float32)
            self.retriever.cache.flush()
            return vectors
        from kgreason.embedding import encode_texts

        return encode_texts(texts, self.predictor.config.encoder.name)

    def explanation_index(self):
        """A faiss inner-product index over the CoS-E explanations of IH-train, built on first use."""
        if self._index is None:
            import faiss

            from kgreason.data import load_examples, locator_from_config

            config = self.predictor.config
            examples = load_examples("csqa", "ih-train", locator_from_config(config), strict=False)
            texts = sorted({example.explanation for example in examples if example.explanation})
            logger.info("indexing %d CoS-E explanations (embedded once, then read from the cache)", len(texts))
            vectors = self._embed(texts)
            index = faiss.IndexFlatIP(vectors.shape[1])
            index.add(vectors)
            self._index, self._explanation_texts = index, texts
        return self._index

    # --- the three views ------------------------------------------------------------------------

    def explain(self, prediction, graph, question: str, answer_text: str | None) -> Explanation:
        """Explain one prediction; ``answer_text`` is the chosen choice or the generated answer."""
        notes = []
        question_concepts = list(getattr(graph, "question_concepts", []) or [])
        choice_concepts = [list(c) for c in (getattr(graph, "choice_concepts", []) or [])]
        if not question_concepts:
            notes.append("no concept of the graph was found in the question; the answer rests on the decoder "
                         "and the question embedding alone")

        query = f"{question} {answer_text}" if answer_text else question
        paths = self._paths(graph, prediction.prediction, answer_text, query)
        if question_concepts and not paths:
            notes.append("no path of at most 2 hops joins a question concept to the answer")

        latents = []
        readout = getattr(prediction, "readout", None)
        facts, fact_vectors = self._facts(graph, query)
        if readout is None:
            notes.append("this model has no readout head (distill.mode is not segments), so its latent vectors "
                         "cannot be compared with sentences")
        else:
            readout = np.asarray(readout, dtype=np.float32)
            index = self.explanation_index()
            scores, rows = index.search(readout, self.top_k)
            for k, norm in enumerate(prediction.latent_norms):
                latent = LatentExplanation(index=k, norm=float(norm))
                latent.explanations = [ScoredText(self._explanation_texts[row], float(score))
                                       for score, row in zip(scores[k], rows[k]) if row >= 0]
                if facts:
                    similarity = fact_vectors @ readout[k]
                    best = np.argsort(-similarity)[: self.top_k]
                    latent.facts = [ScoredText(facts[i], float(similarity[i])) for i in best]
                latents.append(latent)

        return Explanation(question_concepts, choice_concepts, paths, latents, notes)

    def _answer_nodes(self, graph, choice_index: int | None, answer_text: str | None) -> list[int]:
        """Store ids of the answer's concepts: the chosen choice's nodes, or the generated text grounded."""
        if choice_index is not None:
            mask = (graph.node_type == 2) & (graph.node_choice == choice_index)
            return [int(node) for node in graph.node_id[mask].tolist()]
        if answer_text and self.retriever is not None:
            return list(self.retriever.grounder.ground(answer_text).node_ids)
        return []

    def _paths(self, graph, choice_index: int | None, answer_text: str | None, query: str) -> list[ScoredText]:
        if self.retriever is None:
            return []
        store = self.retriever.store
        sources = [int(node) for node in graph.node_id[graph.node_type == 1].tolist()]
        targets = [node for node in self._answer_nodes(graph, choice_index, answer_text) if node not in sources]

        rendered = []
        for source in sources:
            for target in targets:
                for path in store.paths(source, target, max_hops=2, limit=10):
                    rendered.append(store.render_path(path))
        rendered = list(dict.fromkeys(rendered))
        if not rendered:
            return []
        vectors = self._embed(rendered + [query])
        similarity = vectors[:-1] @ vectors[-1]
        best = np.argsort(-similarity)[: self.top_k]
        return [ScoredText(rendered[i], float(similarity[i])) for i in best]

    def _facts(self, graph, query: str) -> tuple[list[str], np.ndarray]:
        """The subgraph's edges between concepts (one direction each) as sentences, with their embeddings."""
        if self.retriever is None or graph.edge_index.numel() == 0:
            return [], np.zeros((0, 1), dtype=np.float32)
        store = self.retriever.store
        schema = store.schema
        node_ids = graph.node_id.tolist()
        relevance = graph.relevance.tolist()

        candidates = []
        for (head, tail), relation in zip(graph.edge_index.t().tolist(), graph.edge_type.tolist()):
            if node_ids[head] < 0 or node_ids[tail] < 0 or schema.is_reverse(relation):
                continue
            candidates.append((relevance[head] + relevance[tail], node_ids[head], relation, node_ids[tail]))
        candidates.sort(key=lambda item: -item[0])

        texts = []
        for _, head, relation, tail in candidates[:MAX_FACTS]:
            texts.append(schema.render(relation, store.concept_text(head), store.concept_text(tail)))
        texts = list(dict.fromkeys(texts))
        if not texts:
            return [], np.zeros((0, 1), dtype=np.float32)
        return texts, self._embed(texts)
