"""``python -m kgreason.data``: dataset statistics and export.

    python -m kgreason.data stats
    python -m kgreason.data export --dataset csqa --split ih-dev --output ih-dev.jsonl
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from tqdm import tqdm

from kgreason.cli import add_common_arguments, run_cli, setup_from_args
from kgreason.data import DATASETS, load_examples, load_openbook, locator_from_config
from kgreason.io import write_jsonl


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m kgreason.data", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    stats = commands.add_parser("stats", help="print question counts per dataset and split")
    add_common_arguments(stats)

    export = commands.add_parser("export", help="write one split as JSONL in kgreason's example format")
    export.add_argument("--dataset", choices=sorted(DATASETS), required=True)
    export.add_argument("--split", required=True, help="csqa: train dev test ih-train ih-dev ih-test; obqa: train dev test")
    export.add_argument("--with-facts", action="store_true", help="OBQA: read the Additional files with fact1")
    export.add_argument("--output", required=True, help="JSONL file to write")
    add_common_arguments(export)
    return parser


def stats_rows(config) -> list[tuple[str, str, int, int, int]]:
    """(dataset, split, questions, with answer, with explanation) for every split."""
    locator = locator_from_config(config)
    rows = []
    splits = [(dataset, split) for dataset, names in DATASETS.items() for split in names]
    for dataset, split in tqdm(splits, desc="reading splits", leave=False):
        examples = load_examples(dataset, split, locator, strict=config.data.strict)
        answered = sum(example.answer is not None for example in examples)
        explained = sum(example.explanation is not None for example in examples)
        rows.append((dataset, split, len(examples), answered, explained))
    rows.append(("obqa", "openbook facts", len(load_openbook(locator)), 0, 0))
    return rows


def print_table(header: Sequence[str], rows: Sequence[Sequence]) -> None:
    """Print rows as a plain aligned table."""
    cells = [[str(value) if not isinstance(value, int) else f"{value:,}" for value in row] for row in rows]
    widths = [max(len(str(h)), *(len(row[i]) for row in cells)) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(value.rjust(w) if value[:1].isdigit() else value.ljust(w) for value, w in zip(row, widths)))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = setup_from_args(args)

    if args.command == "stats":
        print_table(("dataset", "split", "questions", "with answer", "with explanation"), stats_rows(config))
        return 0

    examples = load_examples(
        args.dataset, args.split, locator_from_config(config), strict=config.data.strict, with_facts=args.with_facts
    )
    count = write_jsonl(args.output, (example.to_dict() for example in examples))
    print(f"wrote {count:,} examples to {args.output}")
    return 0


if __name__ == "__main__":
    run_cli(main)
