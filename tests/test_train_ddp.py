"""DDP training with 2 CPU processes on the gloo backend, launched through torchrun.

Run as a script (``torchrun --nproc_per_node 2 tests/test_train_ddp.py OUT_DIR``), this file trains
the tiny config on synthetic graphs and writes each rank's final trainable weights digest.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_rank(out_dir: str) -> None:
    sys.path.insert(0, str(ROOT))
    import torch

    from kgreason.config import load_config
    from kgreason.io import write_json
    from kgreason.model.synthetic import SyntheticGraphSource
    from kgreason.runtime import set_threads
    from kgreason.training import TrainingRecipe

    set_threads(1)
    config = load_config(ROOT / "configs/tiny.yaml", [
        f"train.out_dir={out_dir}", "train.batch_size=2", "train.grad_accum=2", "runtime.num_threads=1",
    ])
    recipe = TrainingRecipe(config, graph_source=SyntheticGraphSource())
    result = recipe.run()

    digest = hashlib.sha256()
    for name, tensor in sorted(recipe.reasoner.trainable_state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.to(torch.float64).numpy().round(6).tobytes())
    rank = int(os.environ["RANK"])
    write_json(Path(out_dir) / f"rank{rank}.json", {
        "digest": digest.hexdigest(), "steps": result.steps, "effective_batch_size": result.effective_batch_size,
    })


def test_ddp_two_processes_gloo(tmp_path):
    out_dir = tmp_path / "ddp"
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    completed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(Path(__file__).resolve()), str(out_dir)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=environment,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]

    ranks = [json.loads((out_dir / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert ranks[0]["digest"] == ranks[1]["digest"]
    assert ranks[0]["steps"] == 2
    assert ranks[0]["effective_batch_size"] == 8

    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    checkpoint = json.loads((out_dir / "best" / "checkpoint.json").read_text())
    assert checkpoint["world_size"] == 2
    assert checkpoint["effective_batch_size"] == 8
    assert (out_dir / "log.csv").is_file()


if __name__ == "__main__":
    run_rank(sys.argv[1])
