"""OpenBookQA (Mihaylov et al. 2018): Main questions, Additional questions with their gold fact, the open book.

Main: train 4,957, dev 500, test 500 questions with 4 choices; ``openbook.txt`` holds the 1,326
science facts. The Additional files repeat the same questions with ``fact1``, the open-book fact
each question was written from.
"""

from __future__ import annotations

from functools import partial

from kgreason.data.errors import DataError
from kgreason.data.examples import Example
from kgreason.data.jsonl import iter_lines, parse_jsonl
from kgreason.data.locator import DataLocator
from kgreason.data.multiple_choice import parse_example

SPLITS = ("train", "dev", "test")
NUM_CHOICES = 4


def load_obqa(locator: DataLocator, split: str, strict: bool = True, with_facts: bool = False) -> list[Example]:
    """Load an OBQA split; ``with_facts`` reads the Additional files so each example carries ``fact``."""
    if split not in SPLITS:
        raise DataError(f"unknown OBQA split {split!r}; choose one of {', '.join(SPLITS)}")
    key = f"obqa/{split}_facts" if with_facts else f"obqa/{split}"
    parse = partial(parse_example, dataset="obqa", split=split, num_choices=NUM_CHOICES, has_answer=True)
    examples, _ = parse_jsonl(locator.path(key), parse, strict=strict, key=lambda example: example.id)
    if with_facts:
        missing = [example.id for example in examples if example.fact is None]
        if missing and strict:
            raise DataError(f"{len(missing)} OBQA {split} questions have no fact1 (first: {missing[0]!r})")
    return examples


def load_openbook(locator: DataLocator) -> list[str]:
    """The open-book science facts, one per line, without the surrounding quotes of the release."""
    facts = []
    for _, text in iter_lines(locator.path("obqa/openbook")):
        if len(text) >= 2 and text[0] == text[-1] == '"':
            text = text[1:-1]
        facts.append(text)
    return facts
