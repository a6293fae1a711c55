"""Training with the tiny config: end to end, resume after an interrupt, the CSV log, plots and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from kgreason.config import load_config
from kgreason.model.backbones import TINY_DECODER, load_backbone
from kgreason.model.synthetic import SyntheticGraphSource
from kgreason.plot import plot_run
from kgreason.training import TrainingRecipe, train
from kgreason.training.log import COLUMNS, read_log

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def backbone():
    return load_backbone(TINY_DECODER)


def tiny_config(out_dir: Path, *overrides: str):
    return load_config(ROOT / "configs/tiny.yaml", [f"train.out_dir={out_dir}", *overrides])


def test_tiny_config_trains_end_to_end(tmp_path, backbone):
    config = tiny_config(tmp_path / "run", "train.grad_accum=2", "train.batch_size=2")
    result = train(config, graph_source=SyntheticGraphSource(), backbone=backbone)

    assert result.steps == 4
    assert result.effective_batch_size == 4
    assert result.best_checkpoint == tmp_path / "run" / "best"
    assert 0.0 <= result.best_dev_accuracy <= 1.0

    rows = read_log(tmp_path / "run" / "log.csv")
    assert list(rows[0]) == list(COLUMNS)
    train_rows = [row for row in rows if row["loss"]]
    assert [int(row["step"]) for row in train_rows] == [1, 2, 3, 4]
    assert all(float(row["distill_loss"]) > 0 for row in train_rows)
    assert all(float(row["questions_per_s"]) > 0 for row in train_rows)
    assert float(train_rows[0]["latent_norm"]) == pytest.approx(backbone.token_embedding_norm, rel=1e-3)
    assert [row["dev_accuracy"] != "" for row in rows].count(True) == 1
    # Latent diversity: mean cosines, so within [-1, 1]; the dev columns on the evaluation row only.
    for column in ("latent_cos_questions", "latent_cos_slots"):
        assert all(-1.0 <= float(row[column]) <= 1.0 + 1e-6 for row in train_rows)
    dev_row = next(row for row in rows if row["dev_accuracy"])
    assert -1.0 <= float(dev_row["dev_latent_cos_questions"]) <= 1.0 + 1e-6
    assert -1.0 <= float(dev_row["dev_latent_cos_slots"]) <= 1.0 + 1e-6
    assert not any(row["dev_latent_cos_questions"] for row in train_rows)

    metadata = json.loads((tmp_path / "run" / "best" / "checkpoint.json").read_text())
    assert metadata["backbone_id"] == TINY_DECODER
    assert metadata["schema_hash"] == SyntheticGraphSource().schema_hash
    assert metadata["num_latents"] == 2
    assert metadata["effective_batch_size"] == 4
    assert metadata["config"]["model"]["num_latents"] == 2
    assert metadata["versions"]["torch"].startswith("2.")
    weights = load_file(tmp_path / "run" / "best" / "model.safetensors")
    assert not any(name.startswith("decoder.") for name in weights)
    assert any(name.startswith("graph_encoder.") for name in weights)
    assert (tmp_path / "run" / "config.yaml").is_file()
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["steps"] == 4


def test_resume_after_interrupt_matches_uninterrupted(tmp_path, backbone, monkeypatch):
    overrides = ("train.batch_size=2", "train.grad_accum=2", "train.epochs=2", "train.save_every=100")
    source = SyntheticGraphSource()
    uninterrupted = train(tiny_config(tmp_path / "full", *overrides), graph_source=source, backbone=backbone)

    calls = {"count": 0}
    original = TrainingRecipe._forward_backward

    def interrupt_on_sixth_micro_batch(self, batch, micro_batches, sync):
        calls["count"] += 1
        if calls["count"] == 6:
            raise KeyboardInterrupt
        return original(self, batch, micro_batches, sync)

    monkeypatch.setattr(TrainingRecipe, "_forward_backward", interrupt_on_sixth_micro_batch)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(tmp_path / "split", *overrides), graph_source=source, backbone=backbone)
    monkeypatch.setattr(TrainingRecipe, "_forward_backward", original)

    saved = json.loads((tmp_path / "split" / "last" / "checkpoint.json").read_text())
    assert saved["step"] == 2
    resumed = train(tiny_config(tmp_path / "split", *overrides), graph_source=source, backbone=backbone)

    assert resumed.steps == uninterrupted.steps == 8
    full = load_file(tmp_path / "full" / "last" / "model.safetensors")
    split = load_file(tmp_path / "split" / "last" / "model.safetensors")
    for name in full:
        torch.testing.assert_close(split[name], full[name], rtol=0, atol=1e-6, msg=name)
    steps = [int(row["step"]) for row in read_log(tmp_path / "split" / "log.csv") if row["loss"]]
    assert steps == [1, 2, 3, 4, 5, 6, 7, 8]


def test_plot_writes_png_curves(tmp_path, backbone):
    train(tiny_config(tmp_path / "run"), graph_source=SyntheticGraphSource(), backbone=backbone)
    paths = plot_run(tmp_path / "run")

    assert {path.name for path in paths} == {"losses.png", "accuracy.png", "latent_norms.png", "latent_diversity.png",
                                             "throughput.png"}
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_missing_log_names_file(tmp_path):
    from kgreason.errors import KgreasonError

    with pytest.raises(KgreasonError, match="log.csv"):
        plot_run(tmp_path)


def test_train_cli_tiny_config(tmp_path):
    pytest.importorskip("kgreason.graph.schema", reason="the graph pipeline provides the relation schema")
    completed = subprocess.run(
        [sys.executable, "-m", "kgreason.train", "--config", "configs/tiny.yaml", f"train.out_dir={tmp_path / 'run'}",
         "-q"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )

    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "best dev accuracy" in completed.stdout
    assert (tmp_path / "run" / "best" / "model.safetensors").is_file()


def test_train_cli_bad_override_one_line(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "kgreason.train", "--config", "configs/tiny.yaml", "model.graph_input=nothing"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )

    assert completed.returncode == 2
    assert "model.graph_input" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_eval_every_evaluates_each_step_once(tmp_path, backbone):
    config = tiny_config(tmp_path / "run", "train.eval_every=2")
    train(config, graph_source=SyntheticGraphSource(), backbone=backbone)

    rows = read_log(tmp_path / "run" / "log.csv")
    evaluated = [int(row["step"]) for row in rows if row["dev_accuracy"]]
    assert evaluated == [2, 4]


def test_max_steps_stop_resumes_mid_epoch(tmp_path, backbone):
    source = SyntheticGraphSource()
    stopped = train(tiny_config(tmp_path / "run", "train.max_steps=2"), graph_source=source, backbone=backbone)
    saved = json.loads((tmp_path / "run" / "last" / "checkpoint.json").read_text())

    resumed = train(tiny_config(tmp_path / "run"), graph_source=source, backbone=backbone)

    assert stopped.steps == 2
    assert saved["epoch"] == 0
    assert resumed.steps == 4
    steps = [int(row["step"]) for row in read_log(tmp_path / "run" / "log.csv") if row["loss"]]
    assert steps == [1, 2, 3, 4]
