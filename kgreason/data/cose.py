"""CoS-E v1.11 human explanations for CommonsenseQA, joined to the questions by id."""

from __future__ import annotations

import logging
from typing import Any

from kgreason.data.errors import DataError, RecordError
from kgreason.data.examples import Example
from kgreason.data.jsonl import parse_jsonl, require
from kgreason.data.locator import DataLocator

logger = logging.getLogger(__name__)

FIELDS = ("open-ended", "selected")


def _parse(record: dict[str, Any]) -> dict[str, str]:
    identifier = require(record, "id")
    explanation = require(record, "explanation", dict)
    texts = {}
    for name in FIELDS:
        value = explanation.get(name)
        if value is not None and not isinstance(value, str):
            raise RecordError(f"explanation.{name}", f"expected str, got {type(value).__name__}")
        texts[name] = " ".join(value.split()) if value else ""
    if not any(texts.values()):
        raise RecordError("explanation", "both open-ended and selected are empty")
    return {"id": identifier, **texts}


def read_cose(locator: DataLocator, split: str, strict: bool = True) -> dict[str, dict[str, str]]:
    """Map CSQA id to its explanation fields (``open-ended``, ``selected``) for split train or dev."""
    if split not in ("train", "dev"):
        raise DataError(f"CoS-E has train and dev explanations only, not {split!r}")
    records, _ = parse_jsonl(locator.path(f"cose/{split}"), _parse, strict=strict, key=lambda r: r["id"])
    return {record["id"]: record for record in records}


def attach_explanations(
    examples: list[Example], locator: DataLocator, split: str, strict: bool = True, field: str = "open-ended"
) -> int:
    """Set ``example.explanation`` from CoS-E ``field``; returns how many examples got one.

    An empty ``field`` falls back to the other field.
    """
    explanations = read_cose(locator, split, strict)
    for example in examples:
        entry = explanations.get(example.id)
        if entry is not None:
            example.explanation = entry[field] or entry["open-ended"] or entry["selected"]
            example.metadata["explanation_selected"] = entry["selected"]
    attached = sum(example.explanation is not None for example in examples)
    logger.debug("attached %d CoS-E %s explanations to %d examples", attached, split, len(examples))
    return attached
