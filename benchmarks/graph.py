"""Benchmark of the graph pipeline: build, grounding, retrieval, coverage. Writes benchmarks/graph.md.

    flock /tmp/kgreason-cpu.lock python benchmarks/graph.py [--questions 200] [--threads 2]

Everything runs on the data mirror in temporary folders. The default graph is built from scratch
twice and the faster run is reported. The embedding cache starts empty for the cold retrieval
numbers. The user's graph_data/ and cache are left alone.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kgreason.data import load_examples  # noqa: E402
from kgreason.graph.embeddings import EmbeddingCache  # noqa: E402
from kgreason.graph.grounding import Grounder  # noqa: E402
from kgreason.graph.retrieval import RetrievalSettings, SubgraphRetriever  # noqa: E402
from kgreason.graph.store import VERIFIED_FILE, GraphStore  # noqa: E402
from kgreason.io import atomic_write_text  # noqa: E402
from kgreason.runtime import project_root, set_threads  # noqa: E402

TARGETS = {
    "build_seconds": 120.0,
    "build_peak_gib": 4.0,
    "grounding_questions_per_s": 1000.0,
    "warm_pairs_per_s": 100.0,
    "csqa_choice_coverage": 0.95,
}


def build_default(folder: Path, threads: int) -> tuple[float, float, dict]:
    """Run ``python -m kgreason.graph build`` in a child process: (wall s, peak RSS GiB, meta)."""
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    command = [sys.executable, "-m", "kgreason.graph", "build", "--force", f"graph.dir={folder.parent}",
               f"graph.name={folder.name}", f"runtime.num_threads={threads}", "-q"]
    started = time.perf_counter()
    subprocess.run(command, cwd=project_root(), env=environment, check=True, capture_output=True)
    wall = time.perf_counter() - started
    # ru_maxrss of the children is the largest peak of any child so far, in KiB on Linux.
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    return wall, peak, GraphStore.open(folder).meta


def measure_open(folder: Path) -> tuple[float, float]:
    """Seconds to open the store with a full checksum pass, and with the verification stamp."""
    (folder / VERIFIED_FILE).unlink(missing_ok=True)
    started = time.perf_counter()
    GraphStore.open(folder)
    cold = time.perf_counter() - started
    started = time.perf_counter()
    store = GraphStore.open(folder)
    _ = store.key_to_id
    warm = time.perf_counter() - started
    return cold, warm


def measure_grounding(store: GraphStore, examples) -> tuple[float, float]:
    """Questions per second (question and all its choices), first pass and second pass."""
    grounder = Grounder(store.key_to_id, max_ngram=4)
    rates = []
    for _ in range(2):
        started = time.perf_counter()
        for example in examples:
            grounder.ground(example.question)
            for choice in example.choice_texts:
                grounder.ground(choice)
        rates.append(len(examples) / (time.perf_counter() - started))
    return rates[0], rates[1]


def coverage(store: GraphStore, examples) -> tuple[float, float]:
    """Share of questions and of choices with at least one concept matched by n-grams."""
    grounder = Grounder(store.key_to_id, max_ngram=4)
    questions = sum(1 for example in examples if grounder.ground(example.question).node_ids)
    choices = [choice for example in examples for choice in example.choice_texts]
    covered = sum(1 for choice in choices if grounder.ground(choice).node_ids)
    return questions / len(examples), covered / len(choices)


def measure_retrieval(store: GraphStore, cache_root: Path, examples) -> dict:
    """Cold (empty embedding cache) and warm retrieval over ``examples``."""
    results = {}
    retriever = SubgraphRetriever(store, EmbeddingCache(cache_root), RetrievalSettings())
    retriever.cache.embed(["load the encoder"])

    started = time.perf_counter()
    retriever.dense_index()
    results["dense_index_s"] = time.perf_counter() - started

    pairs = sum(len(example.choice_texts) for example in examples)
    started = time.perf_counter()
    for start in range(0, len(examples), 32):
        batch = examples[start:start + 32]
        retriever.retrieve_many([(example.question, example.choice_texts) for example in batch])
    results["cold_pairs_per_s"] = pairs / (time.perf_counter() - started)
    results["cold_encoded"] = retriever.cache.encoded

    # Warm: a new process would open the cache from disk, so open it again, then answer one
    # question per call as the answer command does.
    started = time.perf_counter()
    warm = SubgraphRetriever(GraphStore.open(store.folder), EmbeddingCache(cache_root), RetrievalSettings())
    results["warm_open_s"] = time.perf_counter() - started
    warm.dense_index()
    started = time.perf_counter()
    graphs = [warm.retrieve(example.question, example.choice_texts) for example in examples]
    results["warm_pairs_per_s"] = pairs / (time.perf_counter() - started)
    results["warm_encoded"] = warm.cache.encoded

    pair_graphs = [warm.retrieve_pair(example.question, choice) for example in examples[:100]
                   for choice in example.choice_texts]
    results["question_nodes"] = float(np.mean([graph.num_nodes for graph in graphs]))
    results["question_edges"] = float(np.mean([graph.edge_index.shape[1] for graph in graphs]))
    results["pair_nodes"] = float(np.mean([graph.num_nodes for graph in pair_graphs]))
    results["pair_edges"] = float(np.mean([graph.edge_index.shape[1] for graph in pair_graphs]))
    results["pair_node_percentiles"] = np.percentile([graph.num_nodes for graph in pair_graphs], [50, 90, 100])
    results["fallback_choices"] = sum(
        1 for graph, example in zip(graphs, examples) for concepts, choice in zip(graph.choice_concepts,
                                                                                   example.choice_texts)
        if concepts and not Grounder(store.key_to_id).ground(choice).node_ids
    )
    return results


def measure_encoder_rate(store: GraphStore, cache_root: Path, count: int = 2000) -> float:
    """Node texts embedded per second by the sentence encoder (no cache)."""
    cache = EmbeddingCache(cache_root)
    texts = [store.concept_text(node) for node in range(0, store.num_nodes, store.num_nodes // count)][:count]
    cache.encode(texts[:64])
    started = time.perf_counter()
    cache.encode(texts)
    return len(texts) / (time.perf_counter() - started)


def versions() -> str:
    packages = ("torch", "sentence-transformers", "faiss-cpu", "numpy", "simplemma", "lemminflect")
    return ", ".join(f"{name} {importlib.metadata.version(name)}" for name in packages)


def write_report(path: Path, section: str) -> None:
    """Replace the generated section of ``path`` (between the markers), keeping the text around it."""
    start, end = "<!-- benchmark:start -->", "<!-- benchmark:end -->"
    text = path.read_text(encoding="utf-8") if path.is_file() else f"# Graph pipeline benchmark\n\n{start}\n{end}\n"
    if start not in text or end not in text:
        text = text.rstrip("\n") + f"\n\n{start}\n{end}\n"
    before, rest = text.split(start, 1)
    after = rest.split(end, 1)[1]
    atomic_write_text(path, f"{before}{start}\n{section}{end}{after}")


def status(value: float, target: float, higher_is_better: bool = True) -> str:
    met = value >= target if higher_is_better else value <= target
    return "met" if met else "missed"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cores = len(os.sched_getaffinity(0))
    return f"{cpu}, {cores} cores, {memory:.0f} GiB RAM, {platform.system()} {platform.release()}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=int, default=200, help="CSQA dev questions used for retrieval")
    parser.add_argument("--threads", type=int, default=2, help="torch, faiss and OpenMP threads")
    parser.add_argument("--output", default=str(Path(__file__).with_suffix(".md")), help="Markdown file to write")
    args = parser.parse_args()
    set_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="kgreason-bench-") as scratch:
        scratch = Path(scratch)
        folder = scratch / "graphs" / "default"
        builds = [build_default(folder, args.threads) for _ in range(2)]
        build_wall = min(wall for wall, _, _ in builds)
        build_peak = max(peak for _, peak, _ in builds)
        meta = builds[-1][2]
        open_cold, open_warm = measure_open(folder)
        store = GraphStore.open(folder)

        csqa_dev = load_examples("csqa", "dev")
        csqa_train = load_examples("csqa", "train")
        obqa_test = load_examples("obqa", "test")
        obqa_train = load_examples("obqa", "train")
        ground_first, ground_second = measure_grounding(store, csqa_train)
        covered = {
            "CSQA train": coverage(store, csqa_train),
            "CSQA dev": coverage(store, csqa_dev),
            "OBQA train": coverage(store, obqa_train),
            "OBQA test": coverage(store, obqa_test),
        }
        retrieval = measure_retrieval(store, scratch / "embeddings", csqa_dev[: args.questions])
        encoder_rate = measure_encoder_rate(store, scratch / "encoder-rate")

    counts = meta["counts"]
    rows = [
        ("build default graph, wall (incl. Python start-up)", f"{build_wall:.1f} s", "< 120 s",
         status(build_wall, TARGETS["build_seconds"], higher_is_better=False)),
        ("build, inside build_graph", f"{meta['build_seconds']:.1f} s", "", ""),
        ("build peak memory (RSS)", f"{build_peak:.2f} GiB", "< 4 GiB",
         status(build_peak, TARGETS["build_peak_gib"], higher_is_better=False)),
        ("graph size", f"{counts['nodes']:,} nodes, {counts['edges']:,} edges, {counts['event_nodes']:,} events",
         "", ""),
        ("open store, hashing all files / with stamp (+ vocabulary)", f"{open_cold:.2f} s / {open_warm:.2f} s",
         "", ""),
        ("grounding, CSQA train (question + 5 choices), first pass", f"{ground_first:,.0f} questions/s",
         ">= 1,000", status(ground_first, TARGETS["grounding_questions_per_s"])),
        ("grounding, second pass (lemma memo warm)", f"{ground_second:,.0f} questions/s", ">= 1,000",
         status(ground_second, TARGETS["grounding_questions_per_s"])),
        ("dense index over ATOMIC events, first use (embeds them)", f"{retrieval['dense_index_s']:.1f} s", "", ""),
        (f"retrieval, cold embedding cache ({args.questions} CSQA dev questions, batches of 32)",
         f"{retrieval['cold_pairs_per_s']:.0f} pairs/s ({retrieval['cold_encoded']:,} texts encoded)", "", ""),
        ("retrieval, warm cache, one question per call",
         f"{retrieval['warm_pairs_per_s']:,.0f} pairs/s ({retrieval['warm_encoded']} texts encoded)", ">= 100",
         status(retrieval["warm_pairs_per_s"], TARGETS["warm_pairs_per_s"])),
        ("open store + vocabulary + warm embedding cache (a new process)", f"{retrieval['warm_open_s']:.2f} s", "",
         ""),
        ("nodes / edges per question graph (5 choices merged, + context)",
         f"{retrieval['question_nodes']:.1f} / {retrieval['question_edges']:.1f}", "", ""),
        ("nodes / edges per (question, choice) subgraph",
         f"{retrieval['pair_nodes']:.1f} / {retrieval['pair_edges']:.1f}", "", ""),
        ("nodes per (question, choice) subgraph: median / 90th percentile / max",
         " / ".join(f"{value:.0f}" for value in retrieval["pair_node_percentiles"]), "<= max_nodes + 1 = 201", ""),
        ("choices grounded only by the dense fallback", f"{retrieval['fallback_choices']}", "", ""),
        ("sentence encoder on node texts", f"{encoder_rate:.0f} texts/s", "", ""),
        ("estimated first-use cost of graph.dense_scope=all",
         f"{counts['nodes'] / encoder_rate / 60:.1f} min (estimate: nodes / encoder rate)", "", ""),
    ]
    for name, (questions, choices) in covered.items():
        target = ">= 95%" if name == "CSQA dev" else ""
        state = status(choices, TARGETS["csqa_choice_coverage"]) if name == "CSQA dev" else ""
        rows.append((f"coverage {name}: questions / choices with >= 1 concept", f"{questions:.1%} / {choices:.1%}",
                     target, state))

    header = ("measure", "value", "target", "status")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(4)]
    lines = ["| " + " | ".join(str(cell).ljust(width) for cell, width in zip(row, widths)) + " |"
             for row in [header, tuple("-" * width for width in widths), *rows]]
    table = "\n".join(lines)
    print(table)

    command = f"flock /tmp/kgreason-cpu.lock python benchmarks/graph.py --questions {args.questions} " \
              f"--threads {args.threads}"
    section = (
        f"Machine: {machine()}; {args.threads} threads. Python {platform.python_version()}, {versions()}.\n"
        f"Command: `{command}` ({datetime.date.today().isoformat()}).\n\n"
        f"{table}\n"
    )
    write_report(Path(args.output), section)
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
