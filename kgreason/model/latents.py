"""Latent commonsense vectors: K learned queries attend over a question graph's node states.

For graph b with context node state c_b (node 0 carries the question embedding):

    q_bk   = Q_k + W_c c_b                                        (K learned queries, conditioned on the question)
    z_bk   = LayerNorm(q_bk + MultiHeadAttention(q_bk, nodes_b, nodes_b))
    z_bk   = LayerNorm(z_bk + FFN(z_bk))
    v_bk   = Projector(z_bk)                                      ([decoder hidden])
    l_bk   = norm * v_bk / sqrt(|v_bk|^2 + eps)                   (latent_norm = match)

``norm`` is the decoder's mean token-embedding norm, so the injected vectors have the scale the
decoder expects: vectors far larger than token embeddings are a known way to break decoding.
"""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.utils import to_dense_batch

NORM_EPSILON = 1e-6


class LatentPooler(nn.Module):
    """Pool node states ``[N, hidden]`` of B graphs into K latent vectors ``[B, K, decoder_hidden]``."""

    def __init__(self, hidden: int, decoder_hidden: int, num_latents: int, num_heads: int,
                 target_norm: float | None, dropout: float = 0.1):
        super().__init__()
        self.num_latents = num_latents
        self.queries = nn.Parameter(torch.randn(num_latents, hidden) * hidden ** -0.5)
        self.question_projection = nn.Linear(hidden, hidden)
        self.attention = nn.MultiheadAttention(hidden, num_heads, dropout=dropout, batch_first=True)
        self.attention_norm = nn.LayerNorm(hidden)
        self.feed_forward = nn.Sequential(nn.Linear(hidden, 2 * hidden), nn.GELU(), nn.Linear(2 * hidden, hidden))
        self.output_norm = nn.LayerNorm(hidden)
        self.projector = nn.Sequential(
            nn.Linear(hidden, 2 * hidden), nn.GELU(), nn.Linear(2 * hidden, decoder_hidden)
        )
        # A buffer, so that the norm travels with the checkpoint and a device move.
        self.register_buffer("target_norm", torch.tensor(float(target_norm or 0.0)), persistent=True)
        self.match_norm = target_norm is not None

    def forward(self, node_states: torch.Tensor, batch: torch.Tensor, context_index: torch.Tensor) -> torch.Tensor:
        """Latents for node states ``[N, hidden]``, graph index per node ``batch`` [N] and context node per graph [B].

        Returns ``[B, K, decoder_hidden]``.
        """
        num_graphs = context_index.numel()
        nodes, node_mask = to_dense_batch(node_states, batch, batch_size=num_graphs)

        question = self.question_projection(node_states[context_index])
        queries = self.queries.unsqueeze(0) + question.unsqueeze(1)

        attended, _ = self.attention(queries, nodes, nodes, key_padding_mask=~node_mask, need_weights=False)
        pooled = self.attention_norm(queries + attended)
        pooled = self.output_norm(pooled + self.feed_forward(pooled))

        vectors = self.projector(pooled)
        if not self.match_norm:
            return vectors
        scale = self.target_norm / torch.sqrt(vectors.pow(2).sum(-1, keepdim=True) + NORM_EPSILON)
        return vectors * scale
