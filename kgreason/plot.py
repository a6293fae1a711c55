"""``python -m kgreason.plot RUN_DIR``: draw a training run's curves from its log.csv to PNG files.

Writes ``RUN_DIR/plots/losses.png`` (total, answer and distillation loss), ``accuracy.png`` (train
and dev accuracy), ``latent_norms.png`` (latent vectors against the decoder's token embeddings),
``latent_diversity.png`` (mean cosine between questions' and between slots' latents, which reads
1 when the latents have collapsed to one vector) and ``throughput.png`` (questions per second),
each against the optimiser step.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from kgreason.cli import add_common_arguments, run_cli, setup_from_args
from kgreason.errors import KgreasonError
from kgreason.io import atomic_write
from kgreason.training.log import read_log

logger = logging.getLogger(__name__)

FIGURES = {
    "losses": ("loss", (("loss", "total"), ("answer_loss", "answer"), ("distill_loss", "distillation"))),
    "accuracy": ("accuracy", (("train_accuracy", "train (running)"), ("dev_accuracy", "dev"))),
    "latent_norms": ("L2 norm", (("latent_norm", "latent vectors"), ("token_embedding_norm", "token embeddings"))),
    "latent_diversity": ("mean cosine (1 = collapsed)", (
        ("latent_cos_questions", "across questions (train batches)"), ("latent_cos_slots", "across slots (train)"),
        ("dev_latent_cos_questions", "across questions (dev)"), ("dev_latent_cos_slots", "across slots (dev)"),
    )),
    "throughput": ("questions / s", (("questions_per_s", "training"),)),
}


def _series(rows: list[dict[str, str]], column: str) -> tuple[list[int], list[float]]:
    steps, values = [], []
    for row in rows:
        if row.get(column):
            steps.append(int(row["step"]))
            values.append(float(row[column]))
    return steps, values


def plot_run(run_dir: str | Path) -> list[Path]:
    """Draw the figures of FIGURES for ``run_dir``; returns the PNG paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    log_path = run_dir / "log.csv"
    if not log_path.is_file():
        raise KgreasonError(f"{log_path} not found; RUN_DIR must be a folder written by python -m kgreason.train")
    rows = read_log(log_path)
    if not rows:
        raise KgreasonError(f"{log_path} has no rows yet; plot again after the first logged step")

    written = []
    for name, (ylabel, columns) in FIGURES.items():
        figure, axes = plt.subplots(figsize=(6, 4))
        for column, label in columns:
            steps, values = _series(rows, column)
            if steps:
                axes.plot(steps, values, marker="o" if len(steps) < 30 else None, markersize=3, label=label)
        axes.set_xlabel("optimiser step")
        axes.set_ylabel(ylabel)
        axes.set_title(f"{run_dir.name}: {name.replace('_', ' ')}")
        axes.grid(alpha=0.3)
        axes.legend()
        figure.tight_layout()
        path = run_dir / "plots" / f"{name}.png"
        with atomic_write(path, "wb") as stream:
            figure.savefig(stream, format="png", dpi=100)
        plt.close(figure)
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kgreason.plot", description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run folder written by python -m kgreason.train")
    add_common_arguments(parser, with_config=False)
    args = parser.parse_args(argv)
    setup_from_args(args)
    for path in plot_run(args.run_dir):
        print(path)
    return 0


if __name__ == "__main__":
    run_cli(main)
