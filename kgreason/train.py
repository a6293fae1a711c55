"""``python -m kgreason.train``: train the latent reasoner.

    python -m kgreason.train --config configs/csqa.yaml                 # CSQA IH-train, dev accuracy on IH-dev
    python -m kgreason.train --config configs/tiny.yaml                 # a run of seconds, for smoke checks
    torchrun --nproc_per_node 2 -m kgreason.train --config configs/csqa.yaml   # DDP (gloo on CPU, NCCL on CUDA)

The run folder (``train.out_dir``) receives log.csv, best/ and last/ checkpoints and metrics.json;
running the same command again resumes from last/ (``train.resume=false`` starts over).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from kgreason.cli import add_common_arguments, run_cli, setup_from_args
from kgreason.training import train


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kgreason.train", description=__doc__.split("\n")[0])
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    config = setup_from_args(args)

    result = train(config)
    if result.best_dev_accuracy is not None:
        print(f"best dev accuracy {result.best_dev_accuracy:.4f} after {result.steps} steps "
              f"(effective batch {result.effective_batch_size}); best checkpoint: {result.best_checkpoint}")
    else:
        print(f"trained {result.steps} steps (effective batch {result.effective_batch_size}); "
              f"last checkpoint: {result.last_checkpoint}")
    print(f"log: {result.run_dir / 'log.csv'}")
    return 0


if __name__ == "__main__":
    run_cli(main)
