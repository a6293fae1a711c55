"""``python -m kgreason.graph``: build a knowledge graph, inspect it, and precompute question graphs.

    python -m kgreason.graph build                      # the default graph from the data mirror
    python -m kgreason.graph build --conceptnet conceptnet-assertions-5.7.0.csv.gz graph.name=cn5
    python -m kgreason.graph stats
    python -m kgreason.graph ground --dataset csqa --split ih-train
"""

from __future__ import annotations

import argparse
import logging
import shlex
import time
from collections.abc import Sequence
from pathlib import Path

from kgreason.cli import add_common_arguments, run_cli, setup_from_args
from kgreason.data.__main__ import print_table
from kgreason.graph.build import build_graph
from kgreason.graph.readers import GraphSourceError
from kgreason.graph.sources import MIRROR_SOURCES, GraphSource, mirror_sources
from kgreason.graph.store import GraphStore, GraphStoreError, graph_folder
from kgreason.io import sha256_file

logger = logging.getLogger(__name__)

SOURCE_OPTIONS = {
    "conceptnet": ("conceptnet5", "ConceptNet 5 assertions (conceptnet-assertions-5.7.0.csv.gz or a part of it)"),
    "conceptnet4": ("conceptnet4", "ConceptNet 4: conceptnet4_en_edges.tsv or conceptnet_en.graph.gz"),
    "cn100k": ("cn100k", "CN-100K file (Rel<TAB>head<TAB>tail[<TAB>label])"),
    "atomic": ("atomic2019", "ATOMIC 2019 CSV (v4_atomic_*.csv)"),
    "atomic2020": ("atomic2020", "ATOMIC-2020 TSV (released train/dev/test or the system-evaluation file)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m kgreason.graph",
        description="Build a knowledge graph, inspect it, and precompute question graphs.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    build = commands.add_parser(
        "build", help="build graph_data/<graph.name> from the mirror or from the given files",
        description="Without source options, builds from the mirror sources in graph.sources "
                    f"({', '.join(MIRROR_SOURCES)}). With any source option, builds from exactly the given files.",
    )
    for option, (_, help_text) in SOURCE_OPTIONS.items():
        build.add_argument(f"--{option}", action="append", default=[], metavar="FILE", help=help_text + "; repeatable")
    build.add_argument("--force", action="store_true", help="rebuild even when the graph is up to date")
    add_common_arguments(build)

    stats = commands.add_parser("stats", help="print nodes and edges per relation and per source")
    add_common_arguments(stats)

    ground = commands.add_parser("ground", help="precompute and cache the question graphs of a dataset split")
    ground.add_argument("--dataset", choices=("csqa", "obqa"), required=True)
    ground.add_argument("--split", required=True,
                        help="csqa: train dev test ih-train ih-dev ih-test; obqa: train dev test")
    ground.add_argument("--shard-size", type=int, default=None, metavar="N",
                        help="questions per cache shard, the work an interrupted run can lose (default 256)")
    ground.add_argument("--with-facts", action="store_true", help="OBQA: prepend the gold open-book fact")
    add_common_arguments(ground)
    return parser


# --- build ------------------------------------------------------------------------------------

def _sources(args: argparse.Namespace, config) -> list[GraphSource]:
    given = [GraphSource(kind, Path(path)) for option, (kind, _) in SOURCE_OPTIONS.items()
             for path in getattr(args, option)]
    if given:
        return given
    from kgreason.data.locator import default_mirror
    from kgreason.runtime import resolve_path

    root = resolve_path(config.data.root) if config.data.root else default_mirror()
    return mirror_sources(root, config.graph.sources)


def _up_to_date(folder: Path, sources: list[GraphSource]) -> bool:
    """Check whether ``folder`` contains a valid graph built from exactly ``sources`` (same bytes)."""
    try:
        store = GraphStore.open(folder)
    except GraphStoreError:
        return False
    recorded = [(source["kind"], source["sha256"]) for source in store.meta.get("sources", [])]
    wanted = [(source.kind, sha256_file(source.path)) for source in sources]
    return recorded == wanted


def run_build(args: argparse.Namespace, config, argv: Sequence[str]) -> int:
    folder = graph_folder(config)
    sources = _sources(args, config)
    missing = [str(source.path) for source in sources if not source.path.is_file()]
    if missing:
        raise GraphSourceError(f"graph source file(s) not found: {', '.join(missing)}")

    if not args.force and _up_to_date(folder, sources):
        print(f"{folder} is up to date ({len(sources)} sources unchanged); pass --force to rebuild")
        return 0

    command = "python -m kgreason.graph " + shlex.join(["build", *(value for value in argv if value != "--force")])
    meta = build_graph(sources, folder, strict=config.data.strict, progress=not args.quiet, command=command)
    print(f"built {folder} in {meta['build_seconds']:.1f} s")
    print_stats(folder, meta)
    return 0


# --- stats ------------------------------------------------------------------------------------

def print_stats(folder: Path, meta: dict) -> None:
    counts = meta["counts"]
    print(f"graph {folder}: {counts['nodes']:,} nodes, {counts['edges']:,} edges "
          f"({counts['event_nodes']:,} ATOMIC events), built {meta['built_at']} in {meta['build_seconds']:.1f} s")
    print()

    per_relation = sorted(counts["edges_per_relation"].items(), key=lambda item: -item[1])
    print_table(["relation", "edges"], per_relation)
    print()

    kinds = sorted(set(counts["nodes_per_source"]) | set(counts["edges_per_source"]))
    print_table(["source", "nodes", "edges"],
                [(kind, counts["nodes_per_source"].get(kind, 0), counts["edges_per_source"].get(kind, 0))
                 for kind in kinds])
    print("(a node or edge stated by several sources counts once for each)")
    print()

    print_table(["source file", "lines", "edges read"],
                [(Path(source["path"]).name, source["lines"], source["edges"]) for source in meta["sources"]])
    print()

    dropped = ", ".join(f"{reason.replace('_', ' ')} {count:,}" for reason, count in counts["dropped"].items())
    print(f"dropped edges: {dropped or 'none'}")
    unknown = counts["unknown_relations"]
    if unknown:
        listed = ", ".join(f"{name} {count:,}" for name, count in sorted(unknown.items(), key=lambda item: -item[1]))
        print(f"dropped edges with relations outside the schema ({sum(unknown.values()):,}): {listed}")


def run_stats(config) -> int:
    folder = graph_folder(config)
    store = GraphStore.open(folder)
    print_stats(folder, store.meta)
    return 0


# --- ground -----------------------------------------------------------------------------------

def run_ground(args: argparse.Namespace, config) -> int:
    import numpy as np

    from kgreason.data import load_examples, locator_from_config
    from kgreason.graph.cache import DEFAULT_SHARD_SIZE, ground_examples, question_graph_root, question_key
    from kgreason.graph.retrieval import SubgraphRetriever

    if args.shard_size is not None and args.shard_size < 1:
        raise GraphSourceError(f"--shard-size must be at least 1, got {args.shard_size}")
    examples = load_examples(args.dataset, args.split, locator_from_config(config), strict=config.data.strict,
                             with_facts=args.with_facts or config.data.obqa_with_facts,
                             max_examples=config.data.max_examples)
    retriever = SubgraphRetriever.from_config(config)

    started = time.perf_counter()
    report = ground_examples(retriever, examples, question_graph_root(config),
                             shard_size=args.shard_size or DEFAULT_SHARD_SIZE, progress=not args.quiet)
    graphs = report.cache.load([question_key(e.question, e.choice_texts) for e in examples], retriever)
    elapsed = time.perf_counter() - started

    with_question = sum(1 for graph in graphs if graph.question_concepts)
    choices = [concepts for graph in graphs for concepts in graph.choice_concepts]
    with_choice = sum(1 for concepts in choices if concepts)
    print(f"{args.dataset} {args.split}: {len(examples):,} questions in {elapsed:.1f} s; "
          f"{report.shards_written} shards written, {report.shards_reused} reused, in {report.cache.folder}")
    print(f"questions with a grounded concept: {with_question / max(len(graphs), 1):.1%}; "
          f"choices with one: {with_choice / max(len(choices), 1):.1%}")
    print(f"nodes per question graph: mean {np.mean([g.num_nodes for g in graphs]):.1f}; "
          f"edges: mean {np.mean([g.edge_index.shape[1] for g in graphs]):.1f}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    config = setup_from_args(args)
    if args.command == "build":
        return run_build(args, config, argv[1:])
    if args.command == "stats":
        return run_stats(config)
    return run_ground(args, config)


if __name__ == "__main__":
    run_cli(main)
