"""Evaluation outputs: metrics.json, predictions.jsonl and the CSQA leaderboard CSV.

``metrics.json`` holds accuracy and count per seed, their mean and standard deviation when there
are several seeds, the resolved config and package versions. ``predictions.jsonl`` has one row per
question (id, choice scores, prediction, gold, grounded concepts, node count, latent norms). The
leaderboard file is the ``id,answer`` CSV that the CommonsenseQA test leaderboard accepts.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kgreason.io import atomic_write_text, write_json, write_jsonl


@dataclass
class SeedResult:
    """Accuracy of one seed's run over the evaluated questions."""

    seed: int
    correct: int
    count: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    """Wall time of the predictions, model loading excluded."""

    latent_cos_questions: float | None = None
    """Mean cosine between two questions' latents in the same slot (``kgreason.model.diversity``).
    It is near 1 when the latents have collapsed to one vector, and None without latents."""

    latent_cos_slots: float | None = None
    """Mean cosine between two latent slots of one question. None with fewer than two slots."""

    @property
    def accuracy(self) -> float | None:
        """Share of answered questions predicted right; None when no gold answers are known."""
        return self.correct / self.count if self.count else None


def summarize(results: list[SeedResult]) -> dict[str, Any]:
    """Accuracy per seed, and mean and sample standard deviation across seeds when there are several."""
    accuracies = [result.accuracy for result in results if result.accuracy is not None]
    summary: dict[str, Any] = {
        "seeds": [result.seed for result in results],
        "accuracy_per_seed": accuracies,
        "count": results[0].count if results else 0,
    }
    for name in ("latent_cos_questions", "latent_cos_slots"):
        values = [getattr(result, name) for result in results if getattr(result, name) is not None]
        summary[name] = statistics.fmean(values) if values else None
    if not accuracies:
        summary["accuracy"] = None
        return summary

    summary["accuracy"] = statistics.fmean(accuracies)
    if len(accuracies) > 1:
        summary["accuracy_std"] = statistics.stdev(accuracies)
    # Binomial standard error of one run's accuracy: how far a rerun on new questions could move it.
    count = results[0].count
    summary["standard_error"] = math.sqrt(summary["accuracy"] * (1 - summary["accuracy"]) / count)
    return summary


def leaderboard_csv(rows: list[dict[str, Any]]) -> str:
    """The ``id,answer`` CSV (no header) with each prediction's label, in row order."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in rows:
        writer.writerow([row["id"], row["prediction"]])
    return buffer.getvalue()


def write_evaluation(out_dir: str | Path, metrics: dict[str, Any], rows: list[dict[str, Any]],
                     leaderboard_rows: list[dict[str, Any]] | None = None) -> dict[str, Path]:
    """Write metrics.json, predictions.jsonl and, given ``leaderboard_rows``, leaderboard.csv, atomically.

    ``rows`` may hold several seeds' predictions; ``leaderboard_rows`` must hold one row per question.
    """
    out_dir = Path(out_dir)
    paths = {"metrics": out_dir / "metrics.json", "predictions": out_dir / "predictions.jsonl"}
    write_jsonl(paths["predictions"], rows)
    if leaderboard_rows is not None:
        paths["leaderboard"] = out_dir / "leaderboard.csv"
        atomic_write_text(paths["leaderboard"], leaderboard_csv(leaderboard_rows))
    write_json(paths["metrics"], metrics)
    return paths
