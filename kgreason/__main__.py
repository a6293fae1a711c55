"""The ``kgreason`` command: one sub-command per ``python -m kgreason.<name>`` module.

    kgreason answer "Where would you find a jellyfish?" --choices "ocean|desert|attic"
    kgreason data stats
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from kgreason.cli import run_cli

COMMANDS = {
    "answer": ("kgreason.answer", "answer a question"),
    "evaluate": ("kgreason.evaluate", "evaluate on CSQA or OBQA and write metrics and predictions"),
    "train": ("kgreason.train", "train the latent reasoner"),
    "graph": ("kgreason.graph.__main__", "build, inspect and ground knowledge graphs"),
    "data": ("kgreason.data.__main__", "dataset statistics and export"),
    "plot": ("kgreason.plot", "draw training curves from a run folder"),
}


def usage() -> str:
    lines = ["usage: kgreason COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<9} {summary}" for name, (_, summary) in COMMANDS.items()]
    lines += ["", "Run 'kgreason COMMAND --help' for the options of one command."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print(f"error: no command given\n\n{usage()}", file=sys.stderr)
        return 2
    if argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return module.main(rest)


def console() -> None:
    """Run the ``kgreason`` console script, printing user errors as one line as ``python -m`` does."""
    run_cli(main)


if __name__ == "__main__":
    console()
