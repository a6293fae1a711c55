"""Training and inference throughput of the latent reasoner, with peak memory; writes benchmarks/train.md.

    flock /tmp/kgreason-cpu.lock python benchmarks/train.py                       # default config
    flock /tmp/kgreason-cpu.lock python benchmarks/train.py --config configs/gemma.yaml --output benchmarks/train-gemma.md

Training: optimiser steps of the configured batch size and accumulation on real CSQA IH-train
questions with their CoS-E segment targets. The first step is a warm-up and is not timed. The epoch
estimate is 8,500 IH-train questions divided by the measured questions per second (dev evaluation
time not included). Inference: ``Predictor.predict`` on IH-dev questions after one warm-up batch.

Graphs come from the built graph store when ``graph_data/<graph.name>`` exists (``--graphs
retrieved``). Otherwise, or with ``--graphs synthetic``, synthetic graphs of ``--nodes`` nodes with
the retrieval contract's fields stand in, so the numbers measure the model and not retrieval.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from kgreason.config import load_config  # noqa: E402
from kgreason.data import load_examples, locator_from_config  # noqa: E402
from kgreason.io import atomic_write_text  # noqa: E402
from kgreason.model.backbones import load_backbone  # noqa: E402
from kgreason.model.inputs import InputBuilder  # noqa: E402
from kgreason.model.predictor import Predictor  # noqa: E402
from kgreason.model.reasoner import LatentReasoner  # noqa: E402
from kgreason.model.synthetic import SyntheticGraphSource  # noqa: E402
from kgreason.runtime import resolve_device, set_seed, set_threads, setup_logging  # noqa: E402
from kgreason.training.data import build_question_set  # noqa: E402

IH_TRAIN_QUESTIONS = 8500
EPOCH_TARGET_MINUTES = 45.0
INFERENCE_TARGET = 5.0


def peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def graph_source_for(config, kind: str, nodes: int):
    if kind == "retrieved" or (kind == "auto" and (ROOT / config.graph.dir / config.graph.name).is_dir()):
        from kgreason.model.graphs import RetrievedGraphSource

        return RetrievedGraphSource(config), "retrieved"
    return SyntheticGraphSource(num_nodes=nodes), f"synthetic, {nodes} nodes"


def measure_training(config, reasoner, builder, question_set, steps: int, device) -> dict:
    parameters = [p for p in reasoner.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=config.train.lr)
    batch_size, accumulation = config.train.batch_size, config.train.grad_accum
    reasoner.train()

    timings, cursor = [], 0
    for step in range(steps + 1):
        started = time.perf_counter()
        for _ in range(accumulation):
            indices = [(cursor + offset) % len(question_set) for offset in range(batch_size)]
            cursor += batch_size
            batch = question_set.batch(indices, builder, config.distill.mode).to(device)
            output = reasoner(batch)
            (output.loss / accumulation).backward()
        torch.nn.utils.clip_grad_norm_(parameters, config.train.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if step > 0:
            timings.append(time.perf_counter() - started)

    seconds_per_step = sum(timings) / len(timings)
    questions_per_s = batch_size * accumulation / seconds_per_step
    return {
        "seconds_per_step": seconds_per_step, "questions_per_s": questions_per_s,
        "epoch_minutes": IH_TRAIN_QUESTIONS / questions_per_s / 60, "latent_norm": float(output.latent_norms.mean()),
    }


def measure_inference(config, reasoner, question_set, graph_source, device, questions: int) -> dict:
    predictor = Predictor(reasoner, config, graph_source, device=device)
    examples, graphs = question_set.examples, question_set.graphs
    batch_size = config.train.eval_batch_size
    predictor.predict(examples[:batch_size], graphs[:batch_size])

    started = time.perf_counter()
    predictions = predictor.predict(examples[:questions], graphs[:questions])
    elapsed = time.perf_counter() - started
    correct = sum(p.prediction == e.answer_index for p, e in zip(predictions, examples))
    return {"questions_per_s": len(predictions) / elapsed, "questions": len(predictions),
            "untrained_accuracy": correct / len(predictions)}


HEADER = "# Latent reasoner throughput\n\nWritten by `benchmarks/train.py`, one section per config.\n"


def write_section(path: Path, name: str, section: str) -> None:
    """Replace the section ``## name`` of ``path`` (or append it), keeping the other sections."""
    text = path.read_text(encoding="utf-8") if path.is_file() else HEADER
    parts = text.split("\n## ")
    head, sections = parts[0], parts[1:]
    kept = ["## " + part for part in sections if part.split("\n", 1)[0].strip() != name]
    ordered = sorted([*kept, section.rstrip("\n") + "\n"], key=lambda block: block.split("\n", 1)[0] != "## default")
    atomic_write_text(path, head.rstrip("\n") + "\n\n" + "\n".join(block.rstrip("\n") + "\n" for block in ordered))


def summarise_run(run_dir: Path, output: Path, note: str | None = None) -> None:
    """Write the throughput and dev accuracy of a finished training run as the section ``run <name>``."""
    import json

    from kgreason.training.log import read_log

    rows = read_log(run_dir / "log.csv")
    train_rows = [row for row in rows if row["loss"]]
    # A dict keeps one evaluation per step: older runs logged the last step's evaluation twice.
    dev_rows = list({int(row["step"]): float(row["dev_accuracy"]) for row in rows if row["dev_accuracy"]}.items())
    # Rows after the first 5 skip the warm-up steps, whose times include the first decoder passes.
    steady = [float(row["questions_per_s"]) for row in train_rows[5:]] or [float(row["questions_per_s"]) for row in train_rows]
    checkpoint = json.loads((run_dir / "best" / "checkpoint.json").read_text(encoding="utf-8"))
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    elapsed = max(float(row["elapsed_s"]) for row in train_rows)
    config = checkpoint["config"]

    table_rows = [
        ("decoder", f"{checkpoint['backbone_id']} (frozen{', LoRA' if config['model']['lora'] else ''})"),
        ("data", f"{config['data']['dataset']} {config['data']['train_split']}: {metrics['train_questions']:,} questions, "
                 f"dev {config['data']['dev_split']}: {metrics['dev_questions']:,}"),
        ("steps / effective batch", f"{metrics['steps']} / {metrics['effective_batch_size']}"),
        ("training throughput", f"{sum(steady) / len(steady):.2f} questions/s (mean of {len(steady)} log rows)"),
        ("training time", f"{elapsed / 60:.1f} min of training loop up to the last logged step (mid-run dev evaluations included)"),
        ("dev accuracy by step", ", ".join(f"{step}: {value:.4f}" for step, value in dev_rows)),
        ("best dev accuracy", f"{metrics['best_dev_accuracy']:.4f}"),
        ("latent norm / token-embedding norm", f"{train_rows[-1]['latent_norm']} / {train_rows[-1]['token_embedding_norm']}"),
    ]
    # Logs written before the diversity columns existed have none of them.
    diversity = [(int(row["step"]), row["dev_latent_cos_questions"], row["dev_latent_cos_slots"])
                 for row in rows if row.get("dev_latent_cos_questions")]
    if diversity:
        table_rows.append(("dev latent cosine across questions / across slots, by step (1 = collapsed)",
                           ", ".join(f"{step}: {across} / {slots or 'n/a'}" for step, across, slots in diversity)))
    table = "\n".join(f"| {name} | {value} |" for name, value in table_rows)
    name = f"run {run_dir.name}"
    section = (
        f"## {name}\n\n"
        f"Summary of `{run_dir.name}/log.csv`, written by `python benchmarks/train.py --run {run_dir}`. "
        f"Machine: {cpu_name()}, {os.cpu_count()} cores.\n\n"
        "| measure | value |\n|---|---|\n" + table + "\n"
        + (f"\n{note}\n" if note else "")
    )
    write_section(output, name, section)
    print(section)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(ROOT / "configs/default.yaml"))
    parser.add_argument("--steps", type=int, default=6, help="timed optimiser steps (after one warm-up step)")
    parser.add_argument("--questions", type=int, default=96, help="IH-dev questions scored for inference speed")
    parser.add_argument("--graphs", choices=("auto", "retrieved", "synthetic"), default="auto")
    parser.add_argument("--nodes", type=int, default=100, help="nodes per synthetic graph")
    parser.add_argument("--output", default=str(ROOT / "benchmarks/train.md"))
    parser.add_argument("--run", metavar="RUN_DIR", help="summarise a finished training run's log.csv instead")
    parser.add_argument("--note", help="with --run: a paragraph printed under the run's table")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args()

    if args.run:
        summarise_run(Path(args.run), Path(args.output), args.note)
        return

    setup_logging(-1)
    config = load_config(args.config, args.overrides)
    threads = set_threads(config.runtime.num_threads)
    set_seed(config.runtime.seed)
    device = resolve_device(config.runtime.device)

    locator = locator_from_config(config)
    graph_source, graph_kind = graph_source_for(config, args.graphs, args.nodes)
    train_examples = load_examples("csqa", "ih-train", locator, max_examples=64)
    dev_examples = load_examples("csqa", "ih-dev", locator, max_examples=args.questions)
    train_set = build_question_set(train_examples, graph_source.graphs_for(train_examples, progress=False), config, True)
    dev_set = build_question_set(dev_examples, graph_source.graphs_for(dev_examples, progress=False), config, False)

    started = time.perf_counter()
    backbone = load_backbone(config.model.decoder, config.model.gguf_file, config.model.dtype)
    load_seconds = time.perf_counter() - started
    reasoner = LatentReasoner(config, backbone, graph_source.num_relations, graph_source.node_feature_dim).to(device)
    builder = InputBuilder.from_config(backbone.tokenizer, config)

    training = measure_training(config, reasoner, builder, train_set, args.steps, device)
    inference = measure_inference(config, reasoner, dev_set, graph_source, device, args.questions)
    peak = peak_memory_mib(device)

    command = "flock /tmp/kgreason-cpu.lock python benchmarks/train.py " + " ".join(sys.argv[1:])
    rows = [
        ("decoder", f"{backbone.backbone_id} (frozen{', LoRA' if config.model.lora else ''})"),
        ("K latents / GNN", f"{config.model.num_latents} / {config.model.gnn_layers} layers x {config.model.gnn_hidden}"),
        ("graphs", graph_kind),
        ("distillation", f"{config.distill.mode} ({config.distill.loss})"),
        ("token-embedding norm / latent norm", f"{backbone.token_embedding_norm:.3f} / {training['latent_norm']:.3f}"),
        ("decoder load", f"{load_seconds:.1f} s"),
        ("training step", f"{training['seconds_per_step']:.2f} s for {config.train.batch_size} x "
                          f"{config.train.grad_accum} questions (mean of {args.steps})"),
        ("training throughput", f"{training['questions_per_s']:.2f} questions/s"),
        ("epoch of CSQA IH-train (8,500)", f"{training['epoch_minutes']:.1f} min (target <= {EPOCH_TARGET_MINUTES:.0f})"),
        ("inference throughput (warm)", f"{inference['questions_per_s']:.2f} five-choice questions/s over "
                                        f"{inference['questions']} IH-dev questions, batch {config.train.eval_batch_size} "
                                        f"(target >= {INFERENCE_TARGET:.0f})"),
        ("peak memory", f"{peak:,.0f} MiB ({'CUDA allocated' if device.type == 'cuda' else 'process RSS'})"),
    ]
    width = max(len(name) for name, _ in rows)
    print("\n".join(f"{name.ljust(width)}  {value}" for name, value in rows))

    machine = (f"{cpu_name()}, {os.cpu_count()} cores, {threads} torch threads, device {device}, "
               f"torch {torch.__version__}, Python {platform.python_version()}")
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    section = (
        f"## {Path(args.config).stem}\n\n"
        f"Command: `{command}`\n\n"
        f"Machine: {machine}. Config: `{Path(args.config).name}` {' '.join(args.overrides)}\n\n"
        "| measure | value |\n|---|---|\n" + table + "\n"
    )
    write_section(Path(args.output), Path(args.config).stem, section)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
