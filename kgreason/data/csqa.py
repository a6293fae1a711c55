"""CommonsenseQA v1.11: the official splits and the in-house split of KagNet, MHGRN, QA-GNN and GreaseLM.

Official: train 9,741, dev 1,221, test 1,140 (test answers are hidden). In-house: IH-train is the
8,500 train ids listed in ``inhouse_split_qids.txt``, IH-test the other 1,241 train questions, and
IH-dev the official dev set, so that models can be compared without the hidden test answers.
"""

from __future__ import annotations

import logging
from functools import partial

from kgreason.data.cose import attach_explanations
from kgreason.data.errors import DataError
from kgreason.data.examples import Example
from kgreason.data.jsonl import iter_lines, parse_jsonl
from kgreason.data.locator import DataLocator
from kgreason.data.multiple_choice import parse_example

logger = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test", "ih-train", "ih-dev", "ih-test")
NUM_CHOICES = 5


def read_official(locator: DataLocator, split: str, strict: bool = True) -> list[Example]:
    """Read an official split: train, dev or test."""
    path = locator.path(f"csqa/{split}")
    parse = partial(parse_example, dataset="csqa", split=split, num_choices=NUM_CHOICES, has_answer=split != "test")
    examples, _ = parse_jsonl(path, parse, strict=strict, key=lambda example: example.id)
    return examples


def read_inhouse_ids(locator: DataLocator) -> list[str]:
    """The 8,500 IH-train question ids, in file order."""
    path = locator.path("csqa/inhouse_qids")
    ids = [text for _, text in iter_lines(path)]
    duplicates = len(ids) - len(set(ids))
    if duplicates:
        raise DataError(f"{path}: {duplicates} duplicate question ids; restore the file from the official release")
    return ids


def load_csqa(locator: DataLocator, split: str, strict: bool = True, explanations: bool = True) -> list[Example]:
    """Load a CSQA split (see SPLITS) with CoS-E explanations attached where they exist."""
    if split not in SPLITS:
        raise DataError(f"unknown CSQA split {split!r}; choose one of {', '.join(SPLITS)}")

    if split.startswith("ih-"):
        examples = _inhouse(locator, split, strict)
    else:
        examples = read_official(locator, split, strict)

    if explanations and split != "test":
        source = "dev" if split in ("dev", "ih-dev") else "train"
        attach_explanations(examples, locator, source, strict=strict)
    return examples


def _inhouse(locator: DataLocator, split: str, strict: bool) -> list[Example]:
    if split == "ih-dev":
        examples = read_official(locator, "dev", strict)
    else:
        train = read_official(locator, "train", strict)
        train_ids = set(read_inhouse_ids(locator))
        known = {example.id for example in train}
        missing = train_ids - known
        if missing and strict:
            raise DataError(
                f"{len(missing)} in-house ids are not CSQA train ids (for example {sorted(missing)[0]!r}); "
                "the in-house split file does not match the CSQA train file"
            )
        keep = (lambda e: e.id in train_ids) if split == "ih-train" else (lambda e: e.id not in train_ids)
        examples = [example for example in train if keep(example)]

    for example in examples:
        example.split = split
    return examples
