"""Synthetic question graphs with the retrieval contract's fields, for tests and benchmarks without a graph store.

Each graph is a seeded function of its question text. Node 0 is the context node, followed by
question concepts, choice concepts and other nodes, all with random unit-norm features. Typed edges
run in both directions, and here the reverse relation ids are the second half of the relation range.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch_geometric.data import Data

SYNTHETIC_NUM_RELATIONS = 40


@dataclass(frozen=True)
class SyntheticSchema:
    """A stand-in for the relation schema: a relation count and a stable hash."""

    num_relations: int = SYNTHETIC_NUM_RELATIONS
    name: str = "synthetic"

    def schema_hash(self) -> str:
        return hashlib.sha256(f"{self.name}:{self.num_relations}".encode()).hexdigest()


def synthetic_graph(question: str, num_choices: int, num_nodes: int = 12, feature_dim: int = 384,
                    num_relations: int = SYNTHETIC_NUM_RELATIONS) -> Data:
    """Build a contract-shaped question graph of ``num_nodes`` >= 1 nodes, seeded by ``question``."""
    seed = int.from_bytes(hashlib.sha256(question.encode("utf-8")).digest()[:8], "little")
    generator = torch.Generator().manual_seed(seed)

    x = torch.nn.functional.normalize(torch.randn(num_nodes, feature_dim, generator=generator), dim=-1)
    node_type = torch.full((num_nodes,), 3, dtype=torch.long)
    node_type[0] = 0
    node_choice = torch.full((num_nodes,), -1, dtype=torch.long)
    concepts = list(range(1, num_nodes))
    question_nodes = concepts[: max(1, len(concepts) // 4)] if concepts else []
    choice_nodes = concepts[len(question_nodes): len(question_nodes) + num_choices]
    node_type[question_nodes] = 1
    for choice, node in enumerate(choice_nodes):
        node_type[node] = 2
        node_choice[node] = choice

    heads, tails, relations = [], [], []
    half = num_relations // 2
    context_relation = half - 1
    for node in question_nodes + choice_nodes:
        heads.append(0)
        tails.append(node)
        relations.append(context_relation)
    for node in range(1, num_nodes):
        other = int(torch.randint(1, num_nodes, (1,), generator=generator)) if num_nodes > 2 else 0
        if other != node:
            heads.append(node)
            tails.append(other)
            relations.append(int(torch.randint(0, half - 1, (1,), generator=generator)))
    forward = torch.tensor([heads, tails], dtype=torch.long).reshape(2, -1)
    edge_index = torch.cat([forward, forward.flip(0)], dim=1)
    edge_type = torch.tensor(relations, dtype=torch.long)
    edge_type = torch.cat([edge_type, edge_type + half])

    relevance = torch.rand(num_nodes, generator=generator)
    relevance[0] = 1.0
    return Data(
        x=x, node_type=node_type, node_choice=node_choice, relevance=relevance, edge_index=edge_index,
        edge_type=edge_type, node_id=torch.arange(-1, num_nodes - 1), num_nodes=num_nodes,
        question_concepts=[f"concept{node}" for node in question_nodes],
        choice_concepts=[[f"concept{node}"] for node in choice_nodes],
    )


class SyntheticGraphSource:
    """Graph source (see ``kgreason.model.graphs``) that builds synthetic graphs instead of retrieving them."""

    def __init__(self, num_nodes: int = 12, feature_dim: int = 384, schema: SyntheticSchema | None = None):
        self.schema = schema or SyntheticSchema()
        self.num_relations = self.schema.num_relations
        self.schema_hash = self.schema.schema_hash()
        self.node_feature_dim = feature_dim
        self.num_nodes = num_nodes

    def graph_for(self, question: str, choices: Sequence[str]) -> Data:
        return synthetic_graph(question, len(choices), self.num_nodes, self.node_feature_dim, self.num_relations)

    def graphs_for(self, examples: Sequence, progress: bool = True) -> list[Data]:
        return [self.graph_for(example.question, example.choice_texts) for example in examples]
