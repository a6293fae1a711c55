"""The evaluate command on slices of the real splits: files, counts and metrics."""

import csv
import json

import pytest

from kgreason import evaluate
from kgreason.data.errors import DataError
from kgreason.evaluation.report import SeedResult, leaderboard_csv, summarize
from kgreason.model.predictor import DEFAULT_MODEL_DIR

needs_model = pytest.mark.skipif(not (DEFAULT_MODEL_DIR / "checkpoint.json").is_file(),
                                 reason="the shipped default model is not installed")


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@needs_model
@pytest.mark.slow
def test_ih_dev_slice_writes_files(tmp_path, capsys, default_graph_overrides):
    output = tmp_path / "eval"
    status = evaluate.main(["--dataset", "csqa", "--split", "ih-dev", "--limit", "12", "--output", str(output),
                            *default_graph_overrides])
    assert status == 0

    metrics = json.loads((output / "metrics.json").read_text())
    rows = read_jsonl(output / "predictions.jsonl")
    assert metrics["questions"] == 12
    assert metrics["count"] == 12
    assert len(rows) == 12
    assert metrics["accuracy"] == pytest.approx(sum(row["correct"] for row in rows) / 12)
    assert metrics["config"]["model"]["num_latents"] == 4
    assert "torch" in metrics["versions"]
    assert -1.0 <= metrics["latent_cos_questions"] <= 1.0
    assert not (output / "leaderboard.csv").exists()

    row = rows[0]
    for key in ("id", "choice_scores", "prediction", "gold", "question_concepts", "num_nodes", "latent_norms"):
        assert key in row, key
    assert set(row["choice_scores"]) == {"A", "B", "C", "D", "E"}
    assert row["prediction"] in "ABCDE"
    assert "accuracy" in capsys.readouterr().out


@needs_model
@pytest.mark.slow
def test_csqa_test_writes_leaderboard(tmp_path, default_graph_overrides):
    output = tmp_path / "test"
    evaluate.main(["--dataset", "csqa", "--split", "test", "--limit", "6", "--output", str(output),
                   *default_graph_overrides])
    metrics = json.loads((output / "metrics.json").read_text())
    rows = read_jsonl(output / "predictions.jsonl")
    with open(output / "leaderboard.csv", newline="") as stream:
        board = list(csv.reader(stream))
    assert metrics["accuracy"] is None
    assert len(rows) == 6
    assert [line[0] for line in board] == [row["id"] for row in rows]
    assert all(line[1] in "ABCDE" for line in board)


@needs_model
@pytest.mark.slow
def test_obqa_with_facts_slice(tmp_path, default_graph_overrides):
    output = tmp_path / "obqa"
    evaluate.main(["--dataset", "obqa", "--split", "test", "--with-facts", "--limit", "4", "--output", str(output),
                   *default_graph_overrides])
    rows = read_jsonl(output / "predictions.jsonl")
    assert len(rows) == 4
    assert all(set(row["choice_scores"]) == {"A", "B", "C", "D"} for row in rows)


def test_with_facts_rejected_for_csqa():
    with pytest.raises(DataError, match="OBQA only"):
        evaluate.main(["--dataset", "csqa", "--split", "ih-dev", "--with-facts", "--limit", "2"])


def test_unknown_split_rejected():
    with pytest.raises(DataError, match="unknown CSQA split"):
        evaluate.main(["--dataset", "csqa", "--split", "validation"])


@pytest.mark.slow
def test_zero_shot_obqa_slice(tmp_path, capsys):
    output = tmp_path / "zero-shot"
    status = evaluate.main(["--dataset", "obqa", "--split", "test", "--zero-shot", "--output", str(output),
                            "data.max_examples=6"])
    assert status == 0

    metrics = json.loads((output / "metrics.json").read_text())
    rows = read_jsonl(output / "predictions.jsonl")
    assert metrics["questions"] == 6
    assert len(rows) == 6
    assert all(len(row["choice_scores"]) == 4 for row in rows)
    assert all(row["prediction"] in {"A", "B", "C", "D"} for row in rows)
    assert "accuracy" in capsys.readouterr().out


def test_summary_of_several_seeds():
    results = [SeedResult(seed=0, correct=50, count=100), SeedResult(seed=1, correct=60, count=100)]
    summary = summarize(results)
    assert summary["accuracy"] == pytest.approx(0.55)
    assert summary["accuracy_std"] == pytest.approx(0.0707107, rel=1e-4)
    assert summary["accuracy_per_seed"] == [0.5, 0.6]
    assert summary["seeds"] == [0, 1]
    assert summary["latent_cos_questions"] is None


def test_summary_averages_latent_diversity():
    results = [SeedResult(seed=0, correct=5, count=10, latent_cos_questions=0.2, latent_cos_slots=0.5),
               SeedResult(seed=1, correct=6, count=10, latent_cos_questions=0.4, latent_cos_slots=None)]
    summary = summarize(results)
    assert summary["latent_cos_questions"] == pytest.approx(0.3)
    assert summary["latent_cos_slots"] == pytest.approx(0.5)


def test_summary_without_answers():
    summary = summarize([SeedResult(seed=0, correct=0, count=0)])
    assert summary["accuracy"] is None


def test_leaderboard_format():
    text = leaderboard_csv([{"id": "a1", "prediction": "C"}, {"id": "b2", "prediction": "A"}])
    assert text == "a1,C\nb2,A\n"
