"""The training log: one CSV row per logged optimiser step, rewritten atomically after each row."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from kgreason.io import atomic_write_text

COLUMNS = (
    "step", "epoch", "questions_seen", "loss", "answer_loss", "distill_loss", "train_accuracy",
    "latent_norm", "token_embedding_norm", "latent_cos_questions", "latent_cos_slots", "lr", "questions_per_s",
    "dev_accuracy", "dev_latent_cos_questions", "dev_latent_cos_slots", "elapsed_s",
)
"""Columns of ``log.csv``. The ``dev_`` columns are filled on evaluation rows only; norms are L2 norms.

``latent_cos_questions`` and ``latent_cos_slots`` measure latent diversity (``kgreason.model.diversity``):
the mean cosine between two questions' latents in the same slot, and between two slots of one
question. Training rows average them over the row's batches; the ``dev_`` versions cover the whole
dev set. A value near 1 across questions means the latents have collapsed to one vector, so that the
decoder reads the same soft prompt for every question."""


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
        # NaN marks a value that is undefined for this row (a diversity over fewer than two vectors).
        return "" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def read_log(path: str | Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))
