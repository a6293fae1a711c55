"""Sources of the reasoner's question graphs: retrieval from the graph store, or the question alone.

A graph source has the relation schema's ``num_relations`` and ``schema_hash`` (stored in every
checkpoint), the node feature dimension, ``graphs_for(examples)`` for datasets and
``graph_for(question, choices)`` for single questions. Graphs follow the question-graph contract of
``kgreason.graph.retrieval``: ``x`` [N, D], ``node_type`` [N], ``node_choice`` [N], ``relevance``
[N], ``edge_index`` [2, E], ``edge_type`` [E], ``node_id`` [N], with the context node at index 0.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

import torch
from torch_geometric.data import Data

from kgreason.errors import KgreasonError

logger = logging.getLogger(__name__)


class GraphSource(Protocol):
    num_relations: int
    schema_hash: str
    node_feature_dim: int

    def graphs_for(self, examples: Sequence, progress: bool = True) -> list[Data]: ...

    def graph_for(self, question: str, choices: Sequence[str]) -> Data: ...


def _default_schema():
    try:
        from kgreason.graph.schema import DEFAULT_SCHEMA
    except ImportError as error:
        raise KgreasonError(
            f"the relation schema (kgreason.graph.schema) is not available ({error}); this checkout lacks the "
            "graph pipeline"
        ) from None
    return DEFAULT_SCHEMA


def context_graph(question_vector: torch.Tensor) -> Data:
    """Build a graph of the context node alone, carrying the question embedding ``[D]``."""
    return Data(
        x=question_vector.reshape(1, -1).float(),
        node_type=torch.zeros(1, dtype=torch.long),
        node_choice=torch.full((1,), -1, dtype=torch.long),
        relevance=torch.ones(1),
        edge_index=torch.zeros((2, 0), dtype=torch.long),
        edge_type=torch.zeros(0, dtype=torch.long),
        node_id=torch.full((1,), -1, dtype=torch.long),
        num_nodes=1,
        question_concepts=[],
        choice_concepts=[],
    )


class QuestionGraphSource:
    """The context node alone for every question (``model.graph_input=question``)."""

    def __init__(self, config, schema=None):
        from kgreason.embedding import encoder_dimension

        schema = schema or _default_schema()
        self.num_relations = schema.num_relations
        self.schema_hash = schema.schema_hash()
        self.encoder_name = config.encoder.name
        self.batch_size = config.encoder.batch_size
        self.node_feature_dim = encoder_dimension(self.encoder_name)

    def graphs_for(self, examples: Sequence, progress: bool = True) -> list[Data]:
        from kgreason.embedding import encode_texts

        vectors = encode_texts([example.question for example in examples], self.encoder_name, self.batch_size, progress)
        return [context_graph(torch.from_numpy(vector)) for vector in vectors]

    def graph_for(self, question: str, choices: Sequence[str]) -> Data:
        from kgreason.embedding import encode_texts

        return context_graph(torch.from_numpy(encode_texts([question], self.encoder_name)[0]))


class RetrievedGraphSource:
    """Subgraphs retrieved from the graph store in ``graph_data/<graph.name>/``.

    A store that is missing is built from the data mirror first (``ensure_graph``, about 10 s).
    """

    def __init__(self, config):
        try:
            from kgreason.graph.build import ensure_graph
            from kgreason.graph.retrieval import SubgraphRetriever
        except ImportError as error:
            raise KgreasonError(
                f"graph retrieval (kgreason.graph.retrieval) is not available ({error}); use "
                "model.graph_input=question to run without a graph"
            ) from None
        self.config = config
        ensure_graph(config)
        self.retriever = SubgraphRetriever.from_config(config)
        schema = self.retriever.schema
        self.num_relations = schema.num_relations
        self.schema_hash = schema.schema_hash()
        from kgreason.embedding import encoder_dimension

        self.node_feature_dim = encoder_dimension(config.encoder.name)

    def graphs_for(self, examples: Sequence, progress: bool = True) -> list[Data]:
        from kgreason.graph.cache import load_question_graphs

        return load_question_graphs(self.config, list(examples), progress=progress, retriever=self.retriever)

    def graph_for(self, question: str, choices: Sequence[str]) -> Data:
        return self.retriever.retrieve(question, list(choices))


def graph_source_from_config(config) -> GraphSource:
    """Return the graph source that ``model.graph_input`` selects."""
    if config.model.graph_input == "question":
        return QuestionGraphSource(config)
    return RetrievedGraphSource(config)
