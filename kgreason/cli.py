"""Argument handling shared by the ``python -m kgreason.*`` commands."""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Callable, Sequence

from kgreason.config import Config, load_config
from kgreason.errors import KgreasonError
from kgreason.runtime import set_seed, set_threads, setup_logging

logger = logging.getLogger(__name__)


def add_common_arguments(parser: argparse.ArgumentParser, with_config: bool = True) -> None:
    """Add --config, key=value overrides and --verbose/--quiet to ``parser``."""
    if with_config:
        parser.add_argument(
            "--config", metavar="FILE", default=None,
            help="YAML config (see configs/); defaults apply to every key it leaves out",
        )
        parser.add_argument(
            "overrides", nargs="*", metavar="key=value", default=[],
            help="config overrides with dotted keys, for example model.num_latents=4 train.lr=3e-4",
        )
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    verbosity.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")


_OVERRIDE = re.compile(r"^[A-Za-z_]\w*(\.\w+)+=")


def positive_int(text: str) -> int:
    """Parse a count for argparse: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: expected a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def split_overrides(values: Sequence[str]) -> tuple[list[str], list[str]]:
    """Separate dotted ``section.key=value`` overrides from other positional values (questions, paths).

    Only a dotted key counts, so a question such as "Is 2+2=4?" stays a question.
    """
    overrides = [value for value in values if _OVERRIDE.match(value)]
    others = [value for value in values if not _OVERRIDE.match(value)]
    return overrides, others


def setup_from_args(args: argparse.Namespace) -> Config | None:
    """Configure logging from -v/-q, load the config (when the parser has one), seed and set threads."""
    setup_logging(1 if args.verbose else -1 if args.quiet else 0)
    if not hasattr(args, "config"):
        return None
    config = load_config(args.config, args.overrides)
    set_threads(config.runtime.num_threads)
    set_seed(config.runtime.seed)
    return config


def run_cli(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> None:
    """Run a command's ``main`` and exit with its status; user errors print one line, not a traceback."""
    try:
        status = main(argv)
    except KgreasonError as error:
        print(f"error: {error}", file=sys.stderr)
        status = 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        status = 130
    sys.exit(status or 0)
