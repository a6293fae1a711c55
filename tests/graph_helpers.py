"""Real graph stores for tests: the default graph (cached across sessions) and a small subset of it.

The default graph builds from the data mirror in about 10 s on 2 cores. It is kept in
``<kgreason cache>/test-graphs/default-<digest>``, where the digest covers the source files and
the graph-building code, so an unchanged machine reuses it and any change rebuilds it.

The small graph keeps, from the default graph, the concepts of the first CSQA dev questions and
their choices, the intermediates on 2-hop paths between them and a few ATOMIC events with their
edges: a few thousand nodes, quick to embed, on which those questions ground as on the full graph.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import shutil
from pathlib import Path

import kgreason.graph
from kgreason.data import load_examples
from kgreason.data.locator import default_mirror
from kgreason.graph.build import build_graph
from kgreason.graph.grounding import Grounder
from kgreason.graph.sources import GraphSource, mirror_sources
from kgreason.graph.store import GraphStore, GraphStoreError
from kgreason.io import atomic_write_text, sha256_file

SMALL_GRAPH_QUESTIONS = 40
"""CSQA dev questions (from the first) whose concepts and paths the small graph keeps."""

SMALL_GRAPH_EVENTS = 40
"""ATOMIC events kept in the small graph, with all their edges."""

_BUILD_CODE = ("build.py", "readers.py", "normalize.py", "schema.py", "sources.py", "store.py")


def default_graph_digest(sources: list[GraphSource]) -> str:
    """Hash of the source files and of the code that turns them into a store."""
    digest = hashlib.sha256()
    for source in sources:
        digest.update(f"{source.kind}\0{sha256_file(source.path)}\0".encode())
    package = Path(kgreason.graph.__file__).parent
    for name in _BUILD_CODE:
        digest.update((package / name).read_bytes())
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def _exclusive(lock_path: Path):
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def default_graph(cache_root: Path) -> Path:
    """The default graph built from the mirror, reused from ``cache_root`` when sources and code match."""
    sources = mirror_sources(default_mirror(), ["conceptnet4", "cn100k", "atomic"])
    folder = cache_root / f"default-{default_graph_digest(sources)}"
    with _exclusive(cache_root / ".lock"):
        try:
            GraphStore.open(folder)
        except GraphStoreError:
            build_graph(sources, folder, progress=False)
        # Graphs built from older sources or code are never read again.
        for stale in cache_root.glob("default-*"):
            if stale != folder:
                shutil.rmtree(stale, ignore_errors=True)
    return folder


def write_subset_source(store: GraphStore, questions: list[tuple[str, list[str]]], path: Path,
                        num_events: int = SMALL_GRAPH_EVENTS, paths_per_pair: int = 10) -> int:
    """Write the part of ``store`` around ``questions`` as a CN-100K style file; returns the edge count.

    Each line is ``relation<TAB>head text<TAB>tail text`` with forward relation names, which the
    schema maps back onto themselves; node texts normalise back to their keys.
    """
    grounder = Grounder(store.key_to_id, max_ngram=4)
    nodes: set[int] = set()
    for question, choices in questions:
        question_concepts = grounder.ground(question).node_ids
        choice_concepts = [node for choice in choices for node in grounder.ground(choice).node_ids]
        nodes.update(question_concepts)
        nodes.update(choice_concepts)
        for source in question_concepts:
            for target in choice_concepts:
                for found in store.paths(source, target, max_hops=2, limit=paths_per_pair):
                    for head, _, tail in found:
                        nodes.update((head, tail))

    events = {int(node) for node in store.event_ids[:num_events]}
    lines = set()
    for node in sorted(nodes | events):
        neighbours, relations = store.neighbors(node)
        for neighbour, relation in zip(neighbours.tolist(), relations.tolist()):
            if neighbour not in nodes and node not in events:
                continue
            head, tail = (node, neighbour) if not store.schema.is_reverse(relation) else (neighbour, node)
            name = store.schema.relation_names[store.schema.reverse(relation) if store.schema.is_reverse(relation)
                                               else relation]
            lines.add(f"{name}\t{store.concept_text(head)}\t{store.concept_text(tail)}\n")

    atomic_write_text(path, "".join(sorted(lines)))
    return len(lines)


def small_graph(default_folder: Path, work_dir: Path) -> Path:
    """Build the small graph (see the module docstring) into ``work_dir/graphs/small``."""
    store = GraphStore.open(default_folder)
    examples = load_examples("csqa", "dev", max_examples=SMALL_GRAPH_QUESTIONS)
    source = work_dir / "small_source.tsv"
    write_subset_source(store, [(example.question, example.choice_texts) for example in examples], source)
    folder = work_dir / "graphs" / "small"
    build_graph([GraphSource("cn100k", source)], folder, progress=False)
    return folder
