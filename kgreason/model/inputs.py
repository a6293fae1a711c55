"""Decoder input layout and batching.

Every question is laid out for the decoder as

    [BOS] Question: {question}[\\nChoices: {choice 1}; {choice 2}; ...]\\nHint:   <- prefix (token ids)
    l_1 ... l_K                                                                <- latent vectors
    \\nAnswer:                                                                  <- suffix (token ids)
     {choice text}                                                             <- scored continuation

so the latent vectors sit between the question and the answer prompt, bracketed by the marker
texts ``LATENT_OPEN`` and ``LATENT_CLOSE``. The choice list is included with
``model.show_choices=true``. In CODI distillation the teacher reads the written explanation in
place of the latents.

Measured with the frozen SmolLM2-135M-Instruct on the first 200 CSQA IH-dev questions, no latents
(K = 0), choices scored by mean log-likelihood: "Question: q\\nHint:" + "\\nAnswer:" 32.0%,
"Question: q" + "\\nAnswer:" 30.5%, "...\\nThoughts: [" + "]\\nAnswer:" 25.5%, and with the choice
list 22.5% (chance 20%; standard error about 3.3 points). Hence these markers, and no choice list
by default.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import torch
from torch_geometric.data import Batch, Data

LATENT_OPEN = "\nHint:"
LATENT_CLOSE = "\nAnswer:"
MIN_QUESTION_TOKENS = 8
MAX_CHOICE_TOKENS = 24
MAX_EXPLANATION_TOKENS = 64


@dataclass
class ReasonerBatch:
    """B questions ready for the reasoner. Padding is on the right everywhere."""

    graphs: Batch
    prefix_ids: torch.Tensor
    """[B, P] token ids of the prefix."""

    prefix_mask: torch.Tensor
    """[B, P] 1 for real tokens, 0 for padding."""

    suffix_ids: torch.Tensor
    """[S] token ids of LATENT_CLOSE, shared by every question."""

    choice_ids: torch.Tensor
    """[B, C, L] token ids of each choice continuation (a leading space included)."""

    choice_mask: torch.Tensor
    """[B, C, L] 1 for real choice tokens."""

    choice_valid: torch.Tensor
    """[B, C] bool, False for padding choices of questions with fewer than C choices."""

    labels: torch.Tensor
    """[B] gold choice index, -1 where unknown."""

    ids: list[str] = field(default_factory=list)
    targets: torch.Tensor | None = None
    """[B, K, D] explanation targets in the sentence-encoder space (segments distillation)."""

    target_mask: torch.Tensor | None = None
    """[B] bool, True where the question has an explanation."""

    teacher_ids: torch.Tensor | None = None
    """[B, T] prefix + explanation + suffix token ids (CODI distillation)."""

    teacher_mask: torch.Tensor | None = None

    @property
    def size(self) -> int:
        return self.prefix_ids.shape[0]

    def to(self, device: torch.device) -> "ReasonerBatch":
        moved = {name: value.to(device) for name, value in vars(self).items() if hasattr(value, "to") and name != "ids"}
        return replace(self, **moved)


def format_question(question: str, choices: Sequence[str]) -> str:
    """Format the question text that the decoder reads, with a choice list when ``choices`` is not empty."""
    text = f"Question: {question.strip()}"
    if choices:
        text += "\nChoices: " + "; ".join(choice.strip() for choice in choices)
    return text


class InputBuilder:
    """Tokenise questions, choices and explanations into the layout above."""

    @classmethod
    def from_config(cls, tokenizer, config) -> "InputBuilder":
        return cls(tokenizer, config.model.max_question_tokens, config.model.show_choices)

    def __init__(self, tokenizer, max_question_tokens: int = 160, show_choices: bool = False):
        self.tokenizer = tokenizer
        self.max_question_tokens = max_question_tokens
        self.show_choices = show_choices
        self.pad_id = tokenizer.pad_token_id
        self.open_ids = self._encode(LATENT_OPEN)
        self.suffix_ids = self._encode(LATENT_CLOSE)

    def _encode(self, text: str, special: bool = False) -> list[int]:
        return self.tokenizer(text, add_special_tokens=special).input_ids

    def prefix_ids(self, question: str, choices: Sequence[str]) -> list[int]:
        """Token ids up to and including LATENT_OPEN; the question is cut to ``max_question_tokens``."""
        question_ids = self._encode(format_question(question, []), special=True)
        shown = choices if self.show_choices else []
        choice_ids = self._encode(format_question("", shown)[len("Question: "):]) if shown else []
        room = max(self.max_question_tokens - len(choice_ids), MIN_QUESTION_TOKENS)
        return question_ids[:room] + choice_ids + self.open_ids

    def choice_ids(self, choice: str) -> list[int]:
        ids = self._encode(" " + choice.strip())[:MAX_CHOICE_TOKENS]
        return ids or [self.pad_id]

    def teacher_ids(self, prefix: list[int], explanation: str) -> list[int]:
        return prefix + self._encode(" " + explanation.strip())[:MAX_EXPLANATION_TOKENS] + self.suffix_ids

    def collate(self, questions: Sequence[str], choices: Sequence[Sequence[str]], graphs: Sequence[Data],
                labels: Sequence[int | None] | None = None, ids: Sequence[str] | None = None,
                targets: torch.Tensor | None = None, target_mask: torch.Tensor | None = None,
                explanations: Sequence[str | None] | None = None) -> ReasonerBatch:
        """Build a ReasonerBatch; ``explanations`` adds the CODI teacher sequences."""
        if not questions:
            raise ValueError("cannot build a batch from zero questions")
        if not (len(questions) == len(choices) == len(graphs)):
            raise ValueError(
                f"batch has {len(questions)} questions, {len(choices)} choice lists and {len(graphs)} graphs; "
                "give one graph and one choice list per question"
            )

        prefixes = [self.prefix_ids(question, options) for question, options in zip(questions, choices)]
        prefix_ids, prefix_mask = pad_sequences(prefixes, self.pad_id)

        num_choices = max((len(options) for options in choices), default=0)
        tokenised = [[self.choice_ids(choice) for choice in options] for options in choices]
        length = max((len(ids) for options in tokenised for ids in options), default=1)
        choice_ids = torch.full((len(questions), num_choices, length), self.pad_id, dtype=torch.long)
        choice_mask = torch.zeros((len(questions), num_choices, length), dtype=torch.long)
        choice_valid = torch.zeros((len(questions), num_choices), dtype=torch.bool)
        for row, options in enumerate(tokenised):
            for column, ids_ in enumerate(options):
                choice_ids[row, column, : len(ids_)] = torch.tensor(ids_)
                choice_mask[row, column, : len(ids_)] = 1
                choice_valid[row, column] = True

        gold = [-1 if label is None else label for label in (labels or [None] * len(questions))]
        batch = ReasonerBatch(
            graphs=Batch.from_data_list(list(graphs)),
            prefix_ids=prefix_ids, prefix_mask=prefix_mask,
            suffix_ids=torch.tensor(self.suffix_ids, dtype=torch.long),
            choice_ids=choice_ids, choice_mask=choice_mask, choice_valid=choice_valid,
            labels=torch.tensor(gold, dtype=torch.long),
            ids=list(ids or []), targets=targets, target_mask=target_mask,
        )

        if explanations is not None:
            teachers = [
                self.teacher_ids(prefix, text) if text else prefix + self.suffix_ids
                for prefix, text in zip(prefixes, explanations)
            ]
            batch.teacher_ids, batch.teacher_mask = pad_sequences(teachers, self.pad_id)
        return batch


def pad_sequences(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token id lists into ids ``[B, T]`` and an attention mask ``[B, T]``."""
    length = max(len(sequence) for sequence in sequences)
    ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), length), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        ids[row, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
        mask[row, : len(sequence)] = 1
    return ids, mask
