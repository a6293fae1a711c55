"""Datasets: CommonsenseQA (with the in-house split and CoS-E explanations) and OpenBookQA."""

from __future__ import annotations

from kgreason.data.csqa import SPLITS as CSQA_SPLITS
from kgreason.data.csqa import load_csqa
from kgreason.data.errors import DataError
from kgreason.data.examples import Choice, Example
from kgreason.data.locator import DataLocator
from kgreason.data.obqa import SPLITS as OBQA_SPLITS
from kgreason.data.obqa import load_obqa, load_openbook

DATASETS = {"csqa": CSQA_SPLITS, "obqa": OBQA_SPLITS}


def load_examples(
    dataset: str,
    split: str,
    locator: DataLocator | None = None,
    strict: bool = True,
    with_facts: bool = False,
    max_examples: int | None = None,
) -> list[Example]:
    """Load one split of ``dataset`` (csqa or obqa) as Examples, optionally only the first ``max_examples``."""
    locator = locator or DataLocator()
    if dataset == "csqa":
        examples = load_csqa(locator, split, strict=strict)
    elif dataset == "obqa":
        examples = load_obqa(locator, split, strict=strict, with_facts=with_facts)
    else:
        raise DataError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    return examples[:max_examples] if max_examples is not None else examples


def locator_from_config(config) -> DataLocator:
    """A DataLocator for ``config.data`` (mirror root and cache folder)."""
    from kgreason.runtime import cache_dir

    return DataLocator(root=config.data.root, cache=cache_dir(config.data.cache_dir) / "data")


def to_hf_dataset(examples: list[Example]):
    """The examples as a Hugging Face ``datasets.Dataset`` (one row per example, choices as lists)."""
    import datasets

    rows = {
        "id": [e.id for e in examples],
        "question": [e.question for e in examples],
        "choice_labels": [e.labels for e in examples],
        "choice_texts": [e.choice_texts for e in examples],
        "answer": [e.answer for e in examples],
        "explanation": [e.explanation for e in examples],
        "dataset": [e.dataset for e in examples],
        "split": [e.split for e in examples],
    }
    return datasets.Dataset.from_dict(rows)


__all__ = [
    "DATASETS", "Choice", "DataError", "DataLocator", "Example", "load_csqa", "load_examples",
    "load_obqa", "load_openbook", "locator_from_config", "to_hf_dataset",
]
