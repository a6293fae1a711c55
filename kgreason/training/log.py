"""The training log: one CSV row per logged optimiser step, rewritten atomically after each row."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from kgreason.io import atomic_write_text

COLUMNS = (
    "step", "epoch", "questions_seen", "loss", "answer_loss", "distill_loss", "train_accuracy",
    "latent_norm", "token_embedding_norm", "lr", "questions_per_s", "dev_accuracy", "elapsed_s",
)
"""Columns of ``log.csv``. ``dev_accuracy`` is empty on rows without an evaluation; norms are L2 norms."""


class CsvLog:
    """Rows of ``log.csv`` kept in memory; a resumed run keeps the rows up to its checkpoint step."""

    def __init__(self, path: str | Path, resume_step: int | None = None):
        self.path = Path(path)
        self.rows: list[dict[str, str]] = []
        if resume_step is not None and self.path.is_file():
            with open(self.path, newline="", encoding="utf-8") as stream:
                self.rows = [row for row in csv.DictReader(stream) if int(row["step"]) <= resume_step]

    def append(self, **values) -> None:
        unknown = set(values) - set(COLUMNS)
        if unknown:
            raise KeyError(f"unknown log columns {sorted(unknown)}; known: {', '.join(COLUMNS)}")
        self.rows.append({column: _format(values.get(column)) for column in COLUMNS})
        self._write()

    def _write(self) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.path, buffer.getvalue())


def _format(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def read_log(path: str | Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))
