"""Subgraph retrieval: one PyTorch Geometric graph per question, built from its answer choices.

For each (question, choice) pair:

1. ground the question and the choice (longest n-gram match); a text with no match falls back to
   its nearest nodes in the dense index (at most ``FALLBACK_CONCEPTS``, cosine >= ``dense_min_score``).
   Question concepts that are also choice concepts count as choice concepts only;
2. for every (question concept, choice concept) link, collect the intermediate nodes m with an edge
   to both ends (paths of 2 hops, when ``max_hops`` is 2). When the choice has no concept, the
   links are the pairs of question concepts, so a free-form question still gets its paths. Each
   link keeps at most ``CANDIDATE_FACTOR * max_paths_per_pair`` intermediates by summed edge weight,
   which bounds how many nodes must be embedded;
3. add the ``dense_neighbours`` nodes nearest to the question-plus-choice text (cosine >=
   ``dense_min_score``);
4. score every node by relevance, the cosine between its text embedding and the embedding of
   "question choice"; keep the ``max_paths_per_pair`` most relevant intermediates per link, then
   prune the pair to ``max_nodes`` nodes: grounded concepts first, then the rest by relevance.

``retrieve(question, choices)`` merges the pairs on node id and adds the context node (node 0,
the question itself, linked by the ``context`` relation to every grounded concept and dense
neighbour). The edges are all graph edges among the merged nodes, in both directions, plus the
context edges. See ``retrieve`` for the fields of the returned ``Data``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch_geometric.data import Data

from kgreason.graph.dense import DenseIndex
from kgreason.graph.embeddings import EmbeddingCache
from kgreason.graph.grounding import Grounder
from kgreason.graph.schema import RelationSchema
from kgreason.graph.store import GraphStore, graph_folder

logger = logging.getLogger(__name__)

RETRIEVAL_VERSION = 1
"""Version of the retrieval algorithm; part of the question-graph cache key."""

CANDIDATE_FACTOR = 2
"""Intermediates per link embedded and scored, as a multiple of ``max_paths_per_pair``."""

FALLBACK_CONCEPTS = 3
"""Most dense-index nodes that stand in for the concepts of a text with no n-gram match."""

CONTEXT, QUESTION_CONCEPT, CHOICE_CONCEPT, OTHER = 0, 1, 2, 3
"""Values of ``node_type``."""


@dataclass(frozen=True)
class RetrievalSettings:
    """The knobs of retrieval; see ``GraphConfig`` for what each one sets."""

    max_nodes: int = 200
    max_hops: int = 2
    max_ngram: int = 4
    dense_neighbours: int = 5
    dense_min_score: float = 0.55
    max_paths_per_pair: int = 20
    dense_scope: str = "events"

    @classmethod
    def from_config(cls, graph_config) -> RetrievalSettings:
        return cls(**{name: getattr(graph_config, name) for name in cls.__dataclass_fields__})

    def to_dict(self) -> dict:
        return asdict(self)


def embedding_cache_from_config(config) -> EmbeddingCache:
    """Open the on-disk embedding cache for ``config.encoder``, under the kgreason cache folder."""
    from kgreason.runtime import cache_dir, resolve_device

    return EmbeddingCache(
        cache_dir(config.data.cache_dir) / "embeddings",
        encoder_name=config.encoder.name,
        max_seq_length=config.encoder.max_seq_length,
        batch_size=config.encoder.batch_size,
        device=str(resolve_device(config.runtime.device)),
    )


@dataclass
class _Pair:
    """One (question, choice) pair while it is being retrieved."""

    choice_index: int
    query_row: int
    choice_concepts: list[int]
    question_concepts: list[int]
    links: list[tuple[int, int]]
    candidates: list[np.ndarray] = field(default_factory=list)
    """Per link: intermediate node ids, best summed edge weight first."""

    dense: list[int] = field(default_factory=list)
    nodes: list[int] = field(default_factory=list)
    """Selected node ids after pruning."""


@dataclass
class _Question:
    question: str
    choices: list[str]
    question_row: int
    question_concepts: list[int]
    choice_concepts: list[list[int]]
    pairs: list[_Pair]


class SubgraphRetriever:
    """Turns a question and its choices into a question graph over a ``GraphStore``."""

    def __init__(self, store: GraphStore, cache: EmbeddingCache, settings: RetrievalSettings | None = None):
        self.store = store
        self.cache = cache
        self.settings = settings or RetrievalSettings()
        if self.settings.max_hops not in (1, 2):
            raise ValueError(f"max_hops must be 1 or 2, got {self.settings.max_hops}")
        self.grounder = Grounder(store.key_to_id, self.settings.max_ngram)
        self._dense: DenseIndex | None = None
        self._node_rows = np.full(store.num_nodes, -1, dtype=np.int64)
        self._position = np.full(store.num_nodes, -1, dtype=np.int64)

    @classmethod
    def from_config(cls, config) -> SubgraphRetriever:
        """Open ``graph_data/<graph.name>`` and the embedding cache named by ``config``.

        Raises GraphStoreError naming the folder and the build command when the store is missing
        or corrupt.
        """
        store = GraphStore.open(graph_folder(config))
        return cls(store, embedding_cache_from_config(config), RetrievalSettings.from_config(config.graph))

    @property
    def schema(self) -> RelationSchema:
        return self.store.schema

    # --- public API ---------------------------------------------------------------------------

    def retrieve(self, question: str, choices: Sequence[str] = ()) -> Data:
        """Retrieve the question graph of ``question`` and its ``choices`` (which may be empty).

        Fields (N nodes, E edges, D the encoder dimension):

        - ``x`` float32 ``[N, D]``: L2-normalised text embedding; node 0 gets the question's;
        - ``node_type`` long ``[N]``: 0 context, 1 question concept, 2 choice concept, 3 other;
        - ``node_choice`` long ``[N]``: index of the choice a choice concept belongs to (the first
          one if several), else -1;
        - ``relevance`` float32 ``[N]``: max over choices of the cosine between the node text and
          "question choice"; 1 for the context node;
        - ``edge_index`` long ``[2, E]`` and ``edge_type`` long ``[E]``: directed edges, each in
          both directions, with relation ids of ``self.schema``;
        - ``node_id`` long ``[N]``: id in the store, -1 for the context node;
        - ``question_concepts`` (list of str) and ``choice_concepts`` (list of lists of str): the
          texts of the grounded concepts.
        """
        return self.retrieve_many([(question, choices)])[0]

    def retrieve_pair(self, question: str, choice: str) -> Data:
        """Retrieve the subgraph of one (question, choice) pair, in the layout of ``retrieve``."""
        return self.retrieve_many([(question, [choice])])[0]

    def retrieve_many(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[Data]:
        """Run ``retrieve`` for many questions at once, encoding all missing texts in shared batches."""
        questions = self._ground(items)
        self._attach_dense(questions)
        self._collect_candidates(questions)
        self._embed_nodes(questions)
        graphs = [self._assemble(question) for question in questions]
        if self.cache.flush():
            logger.debug("embedding cache now contains %d vectors", len(self.cache))
        return graphs

    def dense_index(self) -> DenseIndex:
        """Return the dense index over ``settings.dense_scope`` nodes, building it on first use."""
        if self._dense is None:
            dim = self.cache.dim or self.cache.embed(["dimension probe"]).shape[1]
            self._dense = DenseIndex.for_store(self.store, self.cache, self.settings.dense_scope, dim)
        return self._dense

    # --- step 1: grounding and query embeddings -------------------------------------------------

    def _ground(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[_Question]:
        texts: list[str] = []
        plans = []
        for question, choices in items:
            choices = [str(choice) for choice in choices]
            question_concepts = list(self.grounder.ground(question).node_ids)
            choice_concepts = [list(self.grounder.ground(choice).node_ids) for choice in choices]
            question_row = len(texts)
            texts.append(question)
            pair_rows = []
            for choice in choices or [None]:
                pair_rows.append(len(texts))
                texts.append(question if choice is None else f"{question} {choice}")
            plans.append((question, choices, question_row, question_concepts, choice_concepts, pair_rows))

        rows = self.cache.rows_for(texts)
        questions = []
        for question, choices, question_row, question_concepts, choice_concepts, pair_rows in plans:
            pairs = [_Pair(index, int(rows[row]), [], [], []) for index, row in enumerate(pair_rows)]
            questions.append(_Question(question, choices, int(rows[question_row]), question_concepts,
                                       choice_concepts, pairs))
        return questions

    # --- step 2: dense neighbours and the fallback for texts without concepts --------------------

    def _dense_enabled(self) -> bool:
        return self.settings.dense_scope != "none"

    def _dense_hits(self, rows: list[int], k: int) -> list[list[int]]:
        """For each embedding row, up to ``k`` node ids with cosine >= dense_min_score, nearest first."""
        if not rows or k == 0 or not self._dense_enabled():
            return [[] for _ in rows]
        index = self.dense_index()
        scores, node_ids = index.search(self.cache.vectors[np.asarray(rows)], k)
        keep = scores >= self.settings.dense_min_score
        return [[int(node) for node, good in zip(nodes, mask) if good] for nodes, mask in zip(node_ids, keep)]

    def _attach_dense(self, questions: list[_Question]) -> None:
        # Texts with no n-gram match: the question itself, or a choice.
        if self._dense_enabled():
            fallback_texts, targets = [], []
            for question in questions:
                if not question.question_concepts and question.question.strip():
                    targets.append((question, None))
                    fallback_texts.append(question.question)
                for index, choice in enumerate(question.choices):
                    if not question.choice_concepts[index] and choice.strip():
                        targets.append((question, index))
                        fallback_texts.append(choice)
            if targets:
                rows = self.cache.rows_for(fallback_texts)
                hits = self._dense_hits([int(row) for row in rows], FALLBACK_CONCEPTS)
                for (question, index), nodes in zip(targets, hits):
                    if index is None:
                        question.question_concepts = nodes
                    else:
                        question.choice_concepts[index] = nodes

        pairs = [pair for question in questions for pair in question.pairs]
        hits = self._dense_hits([pair.query_row for pair in pairs], self.settings.dense_neighbours)
        for pair, nodes in zip(pairs, hits):
            pair.dense = nodes

    # --- step 3: 2-hop intermediates -----------------------------------------------------------

    def _collect_candidates(self, questions: list[_Question]) -> None:
        neighbour_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        limit = CANDIDATE_FACTOR * self.settings.max_paths_per_pair

        for question in questions:
            for pair in question.pairs:
                has_choice = pair.choice_index < len(question.choices)
                choice_concepts = question.choice_concepts[pair.choice_index] if has_choice else []
                choice_set = set(choice_concepts)
                pair.choice_concepts = list(choice_concepts)
                pair.question_concepts = [node for node in question.question_concepts if node not in choice_set]

                if pair.choice_concepts:
                    pair.links = [(q, a) for q in pair.question_concepts for a in pair.choice_concepts]
                else:
                    concepts = pair.question_concepts
                    pair.links = [(concepts[i], concepts[j]) for i in range(len(concepts))
                                  for j in range(i + 1, len(concepts))]

                pair.dense = [node for node in pair.dense
                              if node not in choice_set and node not in pair.question_concepts]
                if self.settings.max_hops < 2 or limit == 0:
                    pair.candidates = [np.zeros(0, dtype=np.int64) for _ in pair.links]
                    continue
                concepts = np.asarray(sorted(set(pair.question_concepts) | choice_set), dtype=np.int64)
                pair.candidates = [
                    self._intermediates(source, target, concepts, limit, neighbour_cache)
                    for source, target in pair.links
                ]

    def _weighted_neighbours(self, node: int, cache: dict) -> tuple[np.ndarray, np.ndarray]:
        """Sorted unique neighbours of ``node`` and the largest edge weight to each."""
        if node not in cache:
            start, end = int(self.store.indptr[node]), int(self.store.indptr[node + 1])
            columns = np.asarray(self.store.indices[start:end])
            weights = np.asarray(self.store.edge_weight[start:end])
            if len(columns) > 1:
                first = np.ones(len(columns), dtype=bool)
                first[1:] = columns[1:] != columns[:-1]
                starts = np.flatnonzero(first)
                cache[node] = (columns[starts], np.maximum.reduceat(weights, starts))
            else:
                cache[node] = (columns, weights)
        return cache[node]

    def _intermediates(self, source: int, target: int, concepts: np.ndarray, limit: int,
                       cache: dict) -> np.ndarray:
        """Nodes adjacent to both ``source`` and ``target``, not themselves concepts, best-weighted first."""
        source_nodes, source_weights = self._weighted_neighbours(source, cache)
        target_nodes, target_weights = self._weighted_neighbours(target, cache)
        common, source_at, target_at = np.intersect1d(source_nodes, target_nodes, assume_unique=True,
                                                      return_indices=True)
        if len(common) == 0:
            return common.astype(np.int64)
        keep = ~np.isin(common, concepts)
        common = common[keep]
        scores = source_weights[source_at][keep] + target_weights[target_at][keep]
        order = np.lexsort((common, -scores))[:limit]
        return common[order].astype(np.int64)

    # --- step 4: node embeddings, relevance and pruning ----------------------------------------

    def _embed_nodes(self, questions: list[_Question]) -> None:
        """Make sure every node that may be selected has a cached embedding row."""
        nodes = set()
        for question in questions:
            nodes.update(question.question_concepts)
            for concepts in question.choice_concepts:
                nodes.update(concepts)
            for pair in question.pairs:
                nodes.update(pair.dense)
                for candidates in pair.candidates:
                    nodes.update(candidates.tolist())
        self.node_rows(np.fromiter(nodes, dtype=np.int64, count=len(nodes)))

    def node_rows(self, node_ids: np.ndarray) -> np.ndarray:
        """Embedding-cache rows of ``node_ids`` (int64 ``[n]``), encoding the texts not cached yet."""
        node_ids = np.asarray(node_ids, dtype=np.int64)
        rows = self._node_rows[node_ids]
        missing = np.unique(node_ids[rows < 0])
        if len(missing):
            texts = [self.store.concept_text(int(node)) for node in missing]
            self._node_rows[missing] = self.cache.rows_for(texts)
            rows = self._node_rows[node_ids]
        return rows

    def node_embeddings(self, node_ids: np.ndarray) -> np.ndarray:
        """Text embeddings of ``node_ids``: float32 ``[n, D]``."""
        rows = self.node_rows(node_ids)
        return self.cache.vectors[rows]

    def _select(self, pair: _Pair, query: np.ndarray) -> list[int]:
        """Pick the nodes of one pair: concepts, the best intermediates per link and dense neighbours."""
        settings = self.settings
        vectors = self.cache.vectors

        def relevance(nodes: list[int] | np.ndarray) -> np.ndarray:
            if len(nodes) == 0:
                return np.zeros(0, dtype=np.float32)
            return vectors[self._node_rows[np.asarray(nodes, dtype=np.int64)]] @ query

        concepts = list(dict.fromkeys(pair.choice_concepts + pair.question_concepts))
        concept_set = set(concepts)
        others: dict[int, None] = {}
        for candidates in pair.candidates:
            if len(candidates) > settings.max_paths_per_pair:
                scores = relevance(candidates)
                candidates = candidates[np.argsort(-scores, kind="stable")[: settings.max_paths_per_pair]]
            for node in candidates.tolist():
                if node not in concept_set:
                    others[node] = None
        for node in pair.dense:
            if node not in concept_set:
                others[node] = None

        if len(concepts) >= settings.max_nodes:
            # Choice concepts outrank question concepts; within each group the most relevant stay.
            ranked = sorted(pair.choice_concepts, key=lambda node: -float(relevance([node])[0]))
            ranked += sorted(pair.question_concepts, key=lambda node: -float(relevance([node])[0]))
            return list(dict.fromkeys(ranked))[: settings.max_nodes]

        other_nodes = np.fromiter(others, dtype=np.int64, count=len(others))
        if len(other_nodes) > settings.max_nodes - len(concepts):
            scores = relevance(other_nodes)
            order = np.lexsort((other_nodes, -scores))[: settings.max_nodes - len(concepts)]
            other_nodes = other_nodes[order]
        return concepts + other_nodes.tolist()

    # --- step 5: the merged question graph -----------------------------------------------------

    def _induced_edges(self, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Find all store edges among ``nodes``: (source positions, target positions, relation ids)."""
        position = self._position
        position[nodes] = np.arange(len(nodes))
        try:
            starts = np.asarray(self.store.indptr[nodes])
            lengths = np.asarray(self.store.indptr[nodes + 1]) - starts
            total = int(lengths.sum())
            if total == 0:
                empty = np.zeros(0, dtype=np.int64)
                return empty, empty, empty
            row_offsets = np.cumsum(lengths) - lengths
            entries = np.repeat(starts - row_offsets, lengths) + np.arange(total)
            targets = position[np.asarray(self.store.indices[entries])]
            keep = targets >= 0
            sources = np.repeat(np.arange(len(nodes)), lengths)[keep]
            relations = np.asarray(self.store.edge_relation[entries])[keep].astype(np.int64)
            return sources, targets[keep], relations
        finally:
            position[nodes] = -1

    def _assemble(self, question: _Question) -> Data:
        vectors = self.cache.vectors
        queries = vectors[[pair.query_row for pair in question.pairs]]

        node_info: dict[int, tuple[int, int]] = {}
        attached: set[int] = set()
        for pair, query in zip(question.pairs, queries):
            pair.nodes = self._select(pair, query)
            selected = set(pair.nodes)
            attached.update(node for node in pair.dense if node in selected)
            for node in pair.nodes:
                if node in pair.choice_concepts:
                    kind = (CHOICE_CONCEPT, pair.choice_index)
                elif node in pair.question_concepts:
                    kind = (QUESTION_CONCEPT, -1)
                else:
                    kind = (OTHER, -1)
                previous = node_info.get(node)
                if previous is None or _outranks(kind, previous):
                    node_info[node] = kind

        nodes = np.fromiter(node_info, dtype=np.int64, count=len(node_info))
        node_vectors = vectors[self._node_rows[nodes]] if len(nodes) else np.zeros((0, vectors.shape[1]), np.float32)
        relevance = (node_vectors @ queries.T).max(axis=1) if len(nodes) else np.zeros(0, dtype=np.float32)

        # Order: question concepts, then choice concepts by choice, then the rest by relevance.
        kinds = np.array([node_info[int(node)][0] for node in nodes], dtype=np.int64)
        choices = np.array([node_info[int(node)][1] for node in nodes], dtype=np.int64)
        first_seen = np.arange(len(nodes))
        group_rank = np.where(kinds == OTHER, 0.0, first_seen.astype(np.float64))
        other_rank = np.where(kinds == OTHER, -relevance, 0.0)
        order = np.lexsort((nodes, other_rank, group_rank, choices, kinds)) if len(nodes) else first_seen
        nodes, kinds, choices = nodes[order], kinds[order], choices[order]
        node_vectors, relevance = node_vectors[order], relevance[order]

        sources, targets, relations = self._induced_edges(nodes)
        sources, targets = sources + 1, targets + 1
        linked = np.flatnonzero((kinds != OTHER) | np.isin(nodes, list(attached))) + 1
        context = np.zeros(len(linked), dtype=np.int64)
        context_id = self.schema.context_id
        edge_source = np.concatenate([context, linked, sources])
        edge_target = np.concatenate([linked, context, targets])
        reverse_context_id = self.schema.reverse(context_id)
        edge_type = np.concatenate([np.full(len(linked), context_id), np.full(len(linked), reverse_context_id),
                                    relations])

        x = np.concatenate([vectors[question.question_row][None, :], node_vectors]).astype(np.float32)
        graph = Data(
            x=torch.from_numpy(x),
            node_type=torch.from_numpy(np.concatenate([[CONTEXT], kinds]).astype(np.int64)),
            node_choice=torch.from_numpy(np.concatenate([[-1], choices]).astype(np.int64)),
            relevance=torch.from_numpy(np.concatenate([[1.0], relevance]).astype(np.float32)),
            edge_index=torch.from_numpy(np.stack([edge_source, edge_target]).astype(np.int64)),
            edge_type=torch.from_numpy(edge_type.astype(np.int64)),
            node_id=torch.from_numpy(np.concatenate([[-1], nodes]).astype(np.int64)),
            num_nodes=len(nodes) + 1,
        )
        graph.question_concepts = [self.store.concept_text(node) for node in question.question_concepts]
        graph.choice_concepts = [[self.store.concept_text(node) for node in concepts]
                                 for concepts in question.choice_concepts]
        return graph


def _outranks(kind: tuple[int, int], other: tuple[int, int]) -> bool:
    """Check whether node role ``kind`` replaces ``other``: choice concept > question concept > other."""
    precedence = {CHOICE_CONCEPT: 0, QUESTION_CONCEPT: 1, OTHER: 2}
    return precedence[kind[0]] < precedence[other[0]]
