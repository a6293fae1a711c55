"""``python -m kgreason.train``: placeholder until this command is implemented."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from kgreason.cli import add_common_arguments, run_cli, setup_from_args
from kgreason.errors import KgreasonError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kgreason.train")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    setup_from_args(args)
    raise KgreasonError("python -m kgreason.train is not implemented yet")


if __name__ == "__main__":
    run_cli(main)
