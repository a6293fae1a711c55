"""Relation-aware graph encoder over retrieved question subgraphs.

Node input features are computed from what every graph built with the same relation schema
carries, so a trained encoder works on any such graph (there is no learned per-node table):

    h0_i = W_x x_i + E_type[node_type_i] + w_r relevance_i          (x_i: sentence embedding, [D])

followed by L residual R-GCN layers (Schlichtkrull et al. 2018, basis decomposition)

    h_i <- LayerNorm(h_i + Dropout(GELU(W_0 h_i + sum_r sum_{j in N_r(i)} (1/|N_r(i)|) W_r h_j)))

where W_r = sum_b a_rb V_b when ``num_bases`` > 0.
"""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.nn import RGCNConv

NUM_NODE_TYPES = 4
"""0 context (the question itself), 1 question concept, 2 choice concept, 3 other."""


class GraphEncoder(nn.Module):
    """Encode a batch of question graphs into node states ``[num_nodes, hidden]``."""

    def __init__(self, input_dim: int, hidden: int, num_relations: int, num_layers: int = 2,
                 num_bases: int = 8, dropout: float = 0.1):
        super().__init__()
        if num_relations < 1:
            raise ValueError(f"num_relations must be at least 1, got {num_relations}")
        self.input_dim = input_dim
        self.num_relations = num_relations

        self.text_projection = nn.Linear(input_dim, hidden)
        self.type_embedding = nn.Embedding(NUM_NODE_TYPES, hidden)
        self.relevance_projection = nn.Linear(1, hidden)
        self.input_norm = nn.LayerNorm(hidden)

        bases = num_bases if 0 < num_bases < num_relations else None
        self.convs = nn.ModuleList(
            RGCNConv(hidden, hidden, num_relations, num_bases=bases, aggr="mean") for _ in range(num_layers)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(num_layers))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, node_type: torch.Tensor, relevance: torch.Tensor,
                edge_index: torch.Tensor, edge_type: torch.Tensor) -> torch.Tensor:
        """Node states for ``x`` [N, D], ``node_type`` [N], ``relevance`` [N], ``edge_index`` [2, E], ``edge_type`` [E].

        Returns ``[N, hidden]``.
        """
        if x.shape[-1] != self.input_dim:
            raise ValueError(
                f"graph node features have dimension {x.shape[-1]} but the graph encoder expects "
                f"{self.input_dim}; build the graph with the same sentence encoder as the model"
            )
        if edge_type.numel() and int(edge_type.max()) >= self.num_relations:
            raise ValueError(
                f"graph has relation id {int(edge_type.max())} but the model knows {self.num_relations} "
                "relations; the graph was built with another relation schema"
            )

        states = self.text_projection(x) + self.type_embedding(node_type)
        states = states + self.relevance_projection(relevance.unsqueeze(-1).to(states.dtype))
        states = self.input_norm(states)

        for conv, norm in zip(self.convs, self.norms):
            message = conv(states, edge_index, edge_type)
            states = norm(states + self.dropout(nn.functional.gelu(message)))
        return states
