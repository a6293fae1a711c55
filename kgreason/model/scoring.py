"""Choice scoring with a shared-prefix KV cache.

For B questions with C choices each, the decoder runs three times:

1. the prefix tokens ``[B, P]`` (question, choices, LATENT_OPEN), once per question. With a frozen
   decoder these keys and values do not depend on any trainable weight, so they are computed
   without autograd;
2. the latent vectors and the suffix ``[B, K + S]`` as ``inputs_embeds``, appended to that cache;
   its last position predicts the first token of every choice;
3. the choice tokens ``[B * C, L - 1]`` on the cache repeated C times along the batch.

Score of choice c = (1 / L_c) * sum_j log p(token_j | prefix, latents, suffix, tokens_<j), the
length-normalised log-likelihood of the choice text. Padding is on the right: padded prefix
positions stay in the cache but the attention mask hides them, and explicit position ids make
every question continue from its own prefix length.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass

import torch
from torch.nn import functional as F
from transformers import DynamicCache


@dataclass
class ChoiceScores:
    """Output of ``score_choices``."""

    scores: torch.Tensor
    """[B, C] length-normalised log-likelihood per choice; -inf for padding choices."""

    token_counts: torch.Tensor
    """[B, C] number of tokens in each choice."""

    answer_hidden: torch.Tensor | None = None
    """[B, layers + 1, H] decoder hidden states at the last suffix position (the answer position)."""


@functools.lru_cache(maxsize=8)
def _cache_argument(model_class: type) -> str:
    """The forward argument that takes a KV cache: ``cache`` from transformers 5.25, ``past_key_values`` before."""
    return "cache" if "cache" in inspect.signature(model_class.forward).parameters else "past_key_values"


def with_cache(decoder, cache: DynamicCache) -> dict:
    """Keyword arguments passing ``cache`` to ``decoder`` (a PEFT wrapper is looked through)."""
    base = decoder.get_base_model() if hasattr(decoder, "get_base_model") else decoder
    return {_cache_argument(type(base)): cache}


def _positions(start: torch.Tensor, length: int) -> torch.Tensor:
    """Position ids ``[B, length]`` counting from ``start`` [B]."""
    return start.unsqueeze(1) + torch.arange(length, device=start.device).unsqueeze(0)


def encode_prefix(decoder, prefix_ids: torch.Tensor, prefix_mask: torch.Tensor, with_grad: bool) -> DynamicCache:
    """Run the prefix ``[B, P]`` and return its KV cache."""
    cache = DynamicCache(config=decoder.config)
    positions = _positions(torch.zeros(prefix_ids.shape[0], dtype=torch.long, device=prefix_ids.device),
                           prefix_ids.shape[1])
    with torch.set_grad_enabled(with_grad and torch.is_grad_enabled()):
        decoder(input_ids=prefix_ids, attention_mask=prefix_mask, position_ids=positions,
                **with_cache(decoder, cache), use_cache=True, logits_to_keep=1)
    return cache


def score_choices(decoder, prefix_ids: torch.Tensor, prefix_mask: torch.Tensor, latents: torch.Tensor,
                  suffix_ids: torch.Tensor, choice_ids: torch.Tensor, choice_mask: torch.Tensor,
                  choice_valid: torch.Tensor, prefix_grad: bool = False,
                  output_hidden_states: bool = False) -> ChoiceScores:
    """Score every choice; see the module docstring.

    Shapes: ``prefix_ids``/``prefix_mask`` [B, P], ``latents`` [B, K, H], ``suffix_ids`` [S],
    ``choice_ids``/``choice_mask`` [B, C, L], ``choice_valid`` [B, C].
    """
    batch, num_choices, length = choice_ids.shape
    embedding = decoder.get_input_embeddings()
    prefix_lengths = prefix_mask.sum(1)

    cache = encode_prefix(decoder, prefix_ids, prefix_mask, prefix_grad)

    suffix = embedding(suffix_ids).unsqueeze(0).expand(batch, -1, -1).to(latents.dtype)
    middle = torch.cat([latents, suffix], dim=1)
    middle_mask = torch.cat([prefix_mask, prefix_mask.new_ones(batch, middle.shape[1])], dim=1)
    middle_output = decoder(
        inputs_embeds=middle, attention_mask=middle_mask, position_ids=_positions(prefix_lengths, middle.shape[1]),
        **with_cache(decoder, cache), use_cache=True, logits_to_keep=1, output_hidden_states=output_hidden_states,
    )
    answer_hidden = None
    if output_hidden_states:
        answer_hidden = torch.stack([state[:, -1] for state in middle_output.hidden_states], dim=1)

    if num_choices == 0:
        empty = latents.new_zeros((batch, 0))
        return ChoiceScores(empty, empty.long(), answer_hidden)

    # Log-probability of the first token of each choice, from the last suffix position.
    first_logprobs = F.log_softmax(middle_output.logits[:, -1].float(), dim=-1)
    token_logprobs = [first_logprobs.gather(1, choice_ids[:, :, 0]).unsqueeze(-1)]

    if length > 1:
        flat_ids = choice_ids.reshape(batch * num_choices, length)
        flat_mask = choice_mask.reshape(batch * num_choices, length)
        cache.batch_repeat_interleave(num_choices)
        expanded_mask = middle_mask.repeat_interleave(num_choices, dim=0)
        start = (prefix_lengths + middle.shape[1]).repeat_interleave(num_choices)
        choice_output = decoder(
            input_ids=flat_ids[:, :-1], attention_mask=torch.cat([expanded_mask, flat_mask[:, :-1]], dim=1),
            position_ids=_positions(start, length - 1), **with_cache(decoder, cache), use_cache=False,
        )
        # Cross-entropy over the vocabulary avoids materialising a second [B*C, L-1, V] tensor.
        rest = -F.cross_entropy(
            choice_output.logits.float().transpose(1, 2), flat_ids[:, 1:], reduction="none"
        )
        token_logprobs.append(rest.reshape(batch, num_choices, length - 1))

    logprobs = torch.cat(token_logprobs, dim=-1) * choice_mask
    counts = choice_mask.sum(-1)
    scores = logprobs.sum(-1) / counts.clamp(min=1)
    scores = scores.masked_fill(~choice_valid, float("-inf"))
    return ChoiceScores(scores=scores, token_counts=counts, answer_hidden=answer_hidden)


def teacher_hidden_states(decoder, teacher_ids: torch.Tensor, teacher_mask: torch.Tensor) -> torch.Tensor:
    """Hidden states ``[B, layers + 1, H]`` at the last real token of each teacher sequence, without gradient."""
    positions = (teacher_mask.cumsum(1) - 1).clamp(min=0)
    with torch.no_grad():
        output = decoder(input_ids=teacher_ids, attention_mask=teacher_mask, position_ids=positions,
                         output_hidden_states=True, use_cache=False, logits_to_keep=1)
    last = teacher_mask.sum(1) - 1
    rows = torch.arange(teacher_ids.shape[0], device=teacher_ids.device)
    return torch.stack([state[rows, last] for state in output.hidden_states], dim=1)
