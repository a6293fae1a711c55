"""Choice scoring with a shared-prefix KV cache.

For B questions with C choices each, the decoder runs three times:

1. the prefix tokens ``[B, P]`` (question, choices, LATENT_OPEN), once per question. With a frozen
   decoder these keys and values do not depend on any trainable weight, so they are computed
   without autograd;
2. the latent vectors and the suffix ``[B, K + S]`` as ``inputs_embeds``, appended to that cache;
   its last position predicts the first token of every choice;
3. the choice tokens of all C choices packed into one row per question ``[B, R]``, on the same
   cache, with a block mask that keeps the choices apart (see ``_score_later_tokens``).

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
    """Return the forward argument that takes a KV cache: ``cache`` in transformers 5.25, else ``past_key_values``."""
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
        past_mask = middle_mask.bool()
        rest = _score_later_tokens(decoder, cache, past_mask, prefix_lengths + middle.shape[1], choice_ids, choice_mask)
        token_logprobs.append(rest[:, :, 1:])

    logprobs = torch.cat(token_logprobs, dim=-1) * choice_mask
    counts = choice_mask.sum(-1)
    scores = logprobs.sum(-1) / counts.clamp(min=1)
    scores = scores.masked_fill(~choice_valid, float("-inf"))
    return ChoiceScores(scores=scores, token_counts=counts, answer_hidden=answer_hidden)


def _pack_choices(choice_ids: torch.Tensor, choice_mask: torch.Tensor):
    """Lay the input tokens of all C choices of a question side by side in one row.

    A choice of L_c tokens contributes its first L_c - 1 tokens as inputs; input j predicts token
    j + 1. Returns ``ids``, ``owner`` (choice index, -1 for padding), ``local`` (j) and ``target``
    (the predicted token id), each ``[B, R]``, where R is the longest packed row.
    """
    batch, num_choices, _ = choice_ids.shape
    inputs_per_choice = (choice_mask.sum(-1) - 1).clamp(min=0).tolist()
    width = max(sum(row) for row in inputs_per_choice)
    ids = torch.zeros((batch, width), dtype=torch.long)
    owner = torch.full((batch, width), -1, dtype=torch.long)
    local = torch.zeros((batch, width), dtype=torch.long)
    target = torch.zeros((batch, width), dtype=torch.long)
    cpu_ids = choice_ids.cpu()
    for row in range(batch):
        offset = 0
        for column in range(num_choices):
            count = inputs_per_choice[row][column]
            span = slice(offset, offset + count)
            ids[row, span] = cpu_ids[row, column, :count]
            target[row, span] = cpu_ids[row, column, 1: count + 1]
            owner[row, span] = column
            local[row, span] = torch.arange(count)
            offset += count
    device = choice_ids.device
    return ids.to(device), owner.to(device), local.to(device), target.to(device)


def _attention_mask_4d(decoder, allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``allowed`` [B, Q, K] (True = may attend) as the 4D mask that the decoder's attention implementation takes."""
    mask = allowed.unsqueeze(1)
    if getattr(decoder.config, "_attn_implementation", "sdpa") == "eager":
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)
    return mask


def _score_later_tokens(decoder, cache: DynamicCache, past_mask: torch.Tensor, start: torch.Tensor,
                        choice_ids: torch.Tensor, choice_mask: torch.Tensor) -> torch.Tensor:
    """Log-probabilities ``[B, C, L]`` of choice tokens 1.. (position 0 is left at 0).

    All choices of a question share one packed row on top of the question's cache: a block mask
    lets each choice token see the cached prefix, latents and suffix plus the earlier tokens of its
    own choice only. Compared with one padded row per choice this skips the padding, which is most
    of the work when many choices are one or two tokens long.
    """
    batch, num_choices, length = choice_ids.shape
    ids, owner, local, target = _pack_choices(choice_ids, choice_mask)
    result = torch.zeros((batch, num_choices, length), device=choice_ids.device)
    if ids.shape[1] == 0:
        return result

    same_choice = (owner.unsqueeze(2) == owner.unsqueeze(1)) & (owner.unsqueeze(2) >= 0)
    causal = local.unsqueeze(2) >= local.unsqueeze(1)
    packed_allowed = same_choice & causal
    # Padding queries see the cached tokens only, so that no attention row is empty.
    past_allowed = past_mask.unsqueeze(1).expand(-1, ids.shape[1], -1)
    allowed = torch.cat([past_allowed, packed_allowed], dim=2)
    dtype = decoder.get_input_embeddings().weight.dtype

    output = decoder(
        input_ids=ids, attention_mask=_attention_mask_4d(decoder, allowed, dtype),
        position_ids=start.unsqueeze(1) + local, **with_cache(decoder, cache), use_cache=False,
    )
    logprobs = -F.cross_entropy(output.logits.float().transpose(1, 2), target, reduction="none")

    rows, slots = torch.nonzero(owner >= 0, as_tuple=True)
    return result.index_put((rows, owner[rows, slots], local[rows, slots] + 1), logprobs[rows, slots])


def teacher_hidden_states(decoder, teacher_ids: torch.Tensor, teacher_mask: torch.Tensor) -> torch.Tensor:
    """Hidden states ``[B, layers + 1, H]`` at the last real token of each teacher sequence, without gradient."""
    positions = (teacher_mask.cumsum(1) - 1).clamp(min=0)
    with torch.no_grad():
        output = decoder(input_ids=teacher_ids, attention_mask=teacher_mask, position_ids=positions,
                         output_hidden_states=True, use_cache=False, logits_to_keep=1)
    last = teacher_mask.sum(1) - 1
    rows = torch.arange(teacher_ids.shape[0], device=teacher_ids.device)
    return torch.stack([state[rows, last] for state in output.hidden_states], dim=1)
