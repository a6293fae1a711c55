"""The one example type shared by every dataset: a question, its choices and what is known about it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Choice:
    """One answer option."""

    label: str
    """Option letter as printed in the dataset (A-E for CSQA, A-D for OBQA)."""

    text: str


@dataclass
class Example:
    """A multiple-choice or free-form question.

    ``answer`` is the gold label, or None where the split has no public answers (CSQA test) or the
    question is free-form. ``explanation`` is a human explanation (CoS-E for CSQA) or None.
    """

    id: str
    question: str
    choices: tuple[Choice, ...]
    answer: str | None
    explanation: str | None
    dataset: str
    split: str
    fact: str | None = None
    """OBQA: the gold open-book fact (``fact1``) when read from the Additional files."""

    concept: str | None = None
    """CSQA: the ConceptNet concept the question was written about (``question_concept``)."""

    metadata: dict = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        return [choice.label for choice in self.choices]

    @property
    def choice_texts(self) -> list[str]:
        return [choice.text for choice in self.choices]

    @property
    def answer_index(self) -> int | None:
        """Position of the gold choice, or None when the answer is unknown."""
        if self.answer is None:
            return None
        return self.labels.index(self.answer)

    @property
    def answer_text(self) -> str | None:
        index = self.answer_index
        return None if index is None else self.choices[index].text

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "question": self.question,
            "choices": [{"label": choice.label, "text": choice.text} for choice in self.choices],
            "answer": self.answer,
            "explanation": self.explanation,
            "dataset": self.dataset,
            "split": self.split,
            "fact": self.fact,
            "concept": self.concept,
        }
