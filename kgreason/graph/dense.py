"""Dense fallback: nearest graph nodes to a text by sentence-embedding similarity (faiss).

String grounding never reaches ATOMIC events ("PersonX plays a ___ in the war"): no question
contains "PersonX". A faiss inner-product index over node-text embeddings attaches the events
nearest to a question, and it grounds a choice that no n-gram matches.

Which nodes the index covers (``graph.dense_scope``) is a cost trade-off, because every covered
node must be embedded once. ``events`` covers the ATOMIC events (4,606 in the default graph),
embedded on first use and then read from the embedding cache. ``all`` covers every node (about
308k in the default graph, several minutes to embed on a CPU, so meant for a GPU or a machine that
keeps its cache). ``none`` turns the fallback off. benchmarks/graph.md has the measured times.
Scores are inner products of L2-normalised embeddings, that is, cosine similarities.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from kgreason.errors import KgreasonError
from kgreason.graph.embeddings import EmbeddingCache, text_key
from kgreason.graph.store import GraphStore

logger = logging.getLogger(__name__)

DENSE_SCOPES = ("events", "all", "none")


class DenseIndex:
    """Exact cosine search over the embeddings of a fixed set of nodes."""

    def __init__(self, node_ids: np.ndarray, vectors: np.ndarray):
        import faiss

        self.node_ids = np.asarray(node_ids, dtype=np.int64)
        self.index = faiss.IndexFlatIP(vectors.shape[1])
        if len(vectors):
            self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))

    def __len__(self) -> int:
        return len(self.node_ids)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Find the ``k`` nearest nodes of each query: (cosine ``[q, k]`` float32, node ids ``[q, k]`` int64).

        Missing neighbours (fewer than ``k`` nodes indexed) have node id -1 and score -inf.
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if len(self.node_ids) == 0 or k == 0 or len(queries) == 0:
            return (np.full((len(queries), k), -np.inf, dtype=np.float32),
                    np.full((len(queries), k), -1, dtype=np.int64))
        scores, positions = self.index.search(queries, min(k, len(self.node_ids)))
        node_ids = np.where(positions >= 0, self.node_ids[np.maximum(positions, 0)], -1)
        scores = np.where(positions >= 0, scores, -np.inf).astype(np.float32)
        if scores.shape[1] < k:
            pad = k - scores.shape[1]
            scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
            node_ids = np.pad(node_ids, ((0, 0), (0, pad)), constant_values=-1)
        return scores, node_ids

    @classmethod
    def for_store(cls, store: GraphStore, cache: EmbeddingCache, scope: str, dim: int) -> DenseIndex:
        """Build the index over the nodes of ``store`` selected by ``scope`` (see DENSE_SCOPES)."""
        if scope not in DENSE_SCOPES:
            raise KgreasonError(f"graph.dense_scope {scope!r} is not one of {', '.join(DENSE_SCOPES)}")
        if scope == "none":
            node_ids = np.zeros(0, dtype=np.int64)
        elif scope == "events":
            node_ids = store.event_ids
        else:
            node_ids = np.arange(store.num_nodes)

        started = time.perf_counter()
        before = cache.encoded
        texts = [store.concept_text(int(node)) for node in node_ids]
        missing = sum(1 for text in texts if text_key(text) not in cache.rows)
        if missing:
            logger.info("dense index: embedding %d of %d %s node texts (first use only; cached afterwards)",
                        missing, len(texts), scope)
        vectors = cache.embed(texts) if texts else np.zeros((0, dim), dtype=np.float32)
        if cache.encoded > before:
            cache.flush()
        logger.info("dense index over %d %s nodes ready in %.1f s (%d newly encoded)", len(node_ids), scope,
                    time.perf_counter() - started, cache.encoded - before)
        return cls(node_ids, vectors)
