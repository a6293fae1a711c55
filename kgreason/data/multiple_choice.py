"""Parse the multiple-choice JSON record format shared by CommonsenseQA and OpenBookQA."""

from __future__ import annotations

from typing import Any

from kgreason.data.errors import RecordError
from kgreason.data.examples import Choice, Example
from kgreason.data.jsonl import require


def parse_choices(record: dict[str, Any], expected: int | None) -> tuple[Choice, ...]:
    """Read ``question.choices``; labels must be unique and texts non-empty."""
    raw_choices = require(record, "question.choices", list)
    if expected is not None and len(raw_choices) != expected:
        raise RecordError("question.choices", f"expected {expected} choices, got {len(raw_choices)}")
    if len(raw_choices) < 2:
        raise RecordError("question.choices", f"needs at least 2 choices, got {len(raw_choices)}")

    choices = []
    for index, raw in enumerate(raw_choices):
        if not isinstance(raw, dict):
            raise RecordError(f"question.choices[{index}]", f"expected an object, got {raw!r}")
        label = require(raw, "label")
        text = require(raw, "text")
        choices.append(Choice(label=label.strip(), text=text.strip()))

    labels = [choice.label for choice in choices]
    if len(set(labels)) != len(labels):
        raise RecordError("question.choices", f"duplicate labels {labels}")
    return tuple(choices)


def parse_example(
    record: dict[str, Any],
    dataset: str,
    split: str,
    num_choices: int | None,
    has_answer: bool,
) -> Example:
    """Build an Example from one CSQA/OBQA record, checking every field it uses."""
    identifier = require(record, "id")
    stem = require(record, "question.stem")
    choices = parse_choices(record, num_choices)

    answer = None
    if has_answer:
        answer = require(record, "answerKey").strip()
        labels = [choice.label for choice in choices]
        if answer not in labels:
            raise RecordError("answerKey", f"{answer!r} is not one of the choice labels {', '.join(labels)}")

    concept = record.get("question", {}).get("question_concept")
    fact = record.get("fact1")
    return Example(
        id=identifier,
        question=" ".join(stem.split()),
        choices=choices,
        answer=answer,
        explanation=None,
        dataset=dataset,
        split=split,
        fact=fact if isinstance(fact, str) and fact.strip() else None,
        concept=concept if isinstance(concept, str) else None,
    )
