"""Merge graph sources into one store: map relations, normalise concepts, drop loops and duplicates.

Every source edge goes through the same steps:

1. its relation is mapped onto the schema (``RelationSchema.map_source_relation``); an unknown
   relation is counted per source and relation name, logged once at the end and dropped;
2. head and tail are normalised (``kgreason.graph.normalize``) and become node keys, so that the same
   concept from two sources is one node. An edge with an empty key (only stop words) is dropped;
3. a reversed mapping swaps head and tail; an edge whose ends are the same node is a self-loop and
   is dropped;
4. duplicate (head, relation, tail) triples are merged, keeping the largest weight and the union of
   the sources that state them.
"""

from __future__ import annotations

import logging
import time
from array import array
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from kgreason.graph.normalize import STOP_WORDS, normalize
from kgreason.graph.readers import SourceReport, read_source
from kgreason.graph.schema import DEFAULT_SCHEMA, RelationSchema
from kgreason.graph.sources import DISPLAY_RANK, SOURCE_BITS, GraphSource
from kgreason.graph.store import EVENT_FLAG, StoreArrays, write_store
from kgreason.io import sha256_file

logger = logging.getLogger(__name__)


class _GraphAccumulator:
    """Interns node keys and collects edges as compact arrays while the sources stream past."""

    def __init__(self, schema: RelationSchema):
        self.schema = schema
        self.node_ids: dict[str, int] = {}
        self.display: list[str] = []
        self.display_score: list[tuple[int, int, int]] = []
        self.node_sources = bytearray()
        self.events: set[int] = set()
        self.heads = array("i")
        self.tails = array("i")
        self.relations = array("B")
        self.weights = array("f")
        self.edge_sources = array("B")
        self.surfaces: dict[str, tuple[str, str, bool]] = {}
        self.dropped: Counter = Counter()
        self.unknown_relations: Counter = Counter()

    def _surface(self, surface: str) -> tuple[str, str, bool]:
        """Return (node key, tidy text, whether the text starts or ends with a stop word) for a surface form."""
        info = self.surfaces.get(surface)
        if info is None:
            text = " ".join(surface.split())
            words = text.lower().split()
            padded = bool(words) and (words[0] in STOP_WORDS or words[-1] in STOP_WORDS)
            info = (normalize(surface), text, padded)
            self.surfaces[surface] = info
        return info

    def _node(self, key: str, text: str, padded: bool, kind: str) -> int:
        """Return the id of node ``key``, created on first sight, keeping the best of its texts for display.

        Texts that start or end with a stop word ("at bookstore", "aim at it") come last, then
        texts from sources that store lemmas (ConceptNet 4), then longer texts.
        """
        score = (int(padded), DISPLAY_RANK[kind], len(text))
        node = self.node_ids.get(key)
        if node is None:
            node = len(self.display)
            self.node_ids[key] = node
            self.display.append(text)
            self.display_score.append(score)
            self.node_sources.append(0)
        elif score < self.display_score[node]:
            self.display[node] = text
            self.display_score[node] = score
        self.node_sources[node] |= SOURCE_BITS[kind]
        return node

    def add_source(self, source: GraphSource, strict: bool, progress: bool) -> SourceReport:
        report = SourceReport(source.path, source.kind)
        map_relation = self.schema.map_source_relation
        source_bit = SOURCE_BITS[source.kind]
        mapped: dict[str, tuple[int, bool] | None] = {}

        edges = read_source(source.kind, source.path, report, strict=strict)
        for edge in tqdm(edges, desc=f"reading {source.path.name}", unit=" edges", disable=not progress,
                         mininterval=1.0):
            if edge.relation not in mapped:
                mapped[edge.relation] = map_relation(edge.relation)
            relation = mapped[edge.relation]
            if relation is None:
                self.unknown_relations[(source.kind, edge.relation)] += 1
                continue
            relation_id, reversed_direction = relation

            head_key, head_text, head_padded = self._surface(edge.head)
            tail_key, tail_text, tail_padded = self._surface(edge.tail)
            if not head_key or not tail_key:
                self.dropped["empty_concept"] += 1
                continue
            if head_key == tail_key:
                self.dropped["self_loop"] += 1
                continue

            head = self._node(head_key, head_text, head_padded, source.kind)
            tail = self._node(tail_key, tail_text, tail_padded, source.kind)
            if relation_id in self.schema.atomic_ids:
                self.events.add(head)
            if reversed_direction:
                head, tail = tail, head

            self.heads.append(head)
            self.tails.append(tail)
            self.relations.append(relation_id)
            self.weights.append(edge.weight)
            self.edge_sources.append(source_bit)
        return report

    def merged_edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Return the unique (head, relation, tail) edges with max weight and OR-ed source bits, sorted by key."""
        heads = np.frombuffer(self.heads, dtype=np.int32).astype(np.int64)
        tails = np.frombuffer(self.tails, dtype=np.int32).astype(np.int64)
        relations = np.frombuffer(self.relations, dtype=np.uint8).astype(np.int64)
        weights = np.frombuffer(self.weights, dtype=np.float32)
        sources = np.frombuffer(self.edge_sources, dtype=np.uint8)

        num_nodes = max(len(self.display), 1)
        keys = (heads * self.schema.num_forward + relations) * num_nodes + tails
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        first = np.ones(len(keys), dtype=bool)
        first[1:] = keys[1:] != keys[:-1]
        starts = np.flatnonzero(first)
        self.dropped["duplicate"] += int(len(keys) - len(starts))

        if len(keys) == 0:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty, np.zeros(0, np.float32), np.zeros(0, np.uint8)
        unique_weights = np.maximum.reduceat(weights[order], starts)
        unique_sources = np.bitwise_or.reduceat(sources[order], starts)
        return heads[order][starts], relations[order][starts], tails[order][starts], unique_weights, unique_sources


def _to_csr(heads: np.ndarray, relations: np.ndarray, tails: np.ndarray, weights: np.ndarray,
            sources: np.ndarray, num_nodes: int, num_forward: int) -> StoreArrays:
    """Build the adjacency in both directions: row u lists (v, r) for u -r-> v and (v, r + F) for v -r-> u.

    Rows are sorted by neighbour id, then relation id.
    """
    rows = np.concatenate([heads, tails])
    columns = np.concatenate([tails, heads])
    edge_relations = np.concatenate([relations, relations + num_forward])
    order = np.lexsort((edge_relations, columns, rows))

    counts = np.bincount(rows, minlength=num_nodes)
    indptr = np.zeros(num_nodes + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return StoreArrays(
        indptr=indptr,
        indices=columns[order].astype(np.int32),
        edge_relation=edge_relations[order].astype(np.uint8),
        edge_weight=np.concatenate([weights, weights])[order].astype(np.float32),
        edge_sources=np.concatenate([sources, sources])[order].astype(np.uint8),
    )


def _counts(acc: _GraphAccumulator, relations: np.ndarray, sources: np.ndarray, node_flags: np.ndarray,
            schema: RelationSchema) -> dict:
    per_relation = np.bincount(relations, minlength=schema.num_forward)
    return {
        "nodes": int(len(acc.display)),
        "edges": int(len(relations)),
        "event_nodes": int(len(acc.events)),
        "edges_per_relation": {
            schema.relation_names[index]: int(count) for index, count in enumerate(per_relation) if count
        },
        "edges_per_source": {
            kind: int(np.count_nonzero(sources & bit)) for kind, bit in SOURCE_BITS.items()
            if np.any(sources & bit)
        },
        "nodes_per_source": {
            kind: int(np.count_nonzero(node_flags & bit)) for kind, bit in SOURCE_BITS.items()
            if np.any(node_flags & bit)
        },
        "dropped": dict(sorted(acc.dropped.items())),
        "unknown_relations": {
            f"{kind}:{name}": count for (kind, name), count in sorted(acc.unknown_relations.items())
        },
    }


def build_graph(sources: Sequence[GraphSource], output: str | Path, *, strict: bool = True,
                progress: bool = True, command: str | None = None,
                schema: RelationSchema = DEFAULT_SCHEMA) -> dict:
    """Read ``sources``, merge them and write the store to ``output`` atomically; returns its meta.json.

    ``command`` is recorded in meta.json as the command that rebuilds this graph.
    """
    started = time.time()
    output = Path(output)
    accumulator = _GraphAccumulator(schema)

    source_records = []
    for source in sources:
        source_started = time.time()
        report = accumulator.add_source(source, strict=strict, progress=progress)
        if report.skipped.get("malformed"):
            logger.warning("%s: skipped %d malformed lines; first: %s", source.path,
                           report.skipped["malformed"], report.first_problem)
        logger.info("%s: %d lines, %d edges (%.1f s)", source.path, report.lines, report.edges,
                    time.time() - source_started)
        source_records.append({
            "kind": source.kind,
            "path": str(source.path.resolve()),
            "sha256": sha256_file(source.path),
            "size": source.path.stat().st_size,
            "lines": report.lines,
            "edges": report.edges,
            "skipped": dict(report.skipped),
        })

    unknown = accumulator.unknown_relations
    if unknown:
        listed = ", ".join(f"{kind}:{name} {count}" for (kind, name), count in unknown.most_common(8))
        more = f" and {len(unknown) - 8} more" if len(unknown) > 8 else ""
        logger.warning("dropped %d edges whose relation maps to no schema relation: %s%s (all listed by "
                       "python -m kgreason.graph stats)", sum(unknown.values()), listed, more)

    heads, relations, tails, weights, edge_sources = accumulator.merged_edges()
    num_nodes = len(accumulator.display)
    arrays = _to_csr(heads, relations, tails, weights, edge_sources, num_nodes, schema.num_forward)

    node_flags = np.frombuffer(bytes(accumulator.node_sources), dtype=np.uint8).copy()
    if accumulator.events:
        node_flags[np.fromiter(accumulator.events, dtype=np.int64)] |= EVENT_FLAG
    arrays.node_flags = node_flags

    keys = [""] * num_nodes
    for key, node in accumulator.node_ids.items():
        keys[node] = key

    meta = {
        "sources": source_records,
        "counts": _counts(accumulator, relations, edge_sources, node_flags, schema),
        "build_seconds": None,
        "command": command,
    }
    meta = write_store(output, arrays, keys, accumulator.display, meta, schema, started=started)
    logger.info("wrote %s: %d nodes, %d edges in %.1f s", output, meta["counts"]["nodes"],
                meta["counts"]["edges"], meta["build_seconds"])
    return meta


def ensure_graph(config, progress: bool = True) -> Path:
    """Return the store folder of ``config``, building it from the mirror first if it does not exist.

    A folder that exists but fails to open (corrupt, partial, another version) raises
    GraphStoreError naming the folder and the command that rebuilds it.
    """
    from kgreason.data.locator import default_mirror
    from kgreason.graph.sources import mirror_sources
    from kgreason.graph.store import GraphStore, graph_folder, rebuild_command
    from kgreason.runtime import resolve_path

    folder = graph_folder(config)
    if folder.exists():
        # A folder that exists but does not open is corrupt or partial: rebuilding it silently could
        # replace a graph built from the user's own files, so the error names the rebuild command.
        GraphStore.open(folder)
        return folder
    command = rebuild_command(folder)
    logger.warning("graph folder %s not found; building it from the data mirror now", folder)

    root = resolve_path(config.data.root) if config.data.root else default_mirror()
    sources = mirror_sources(root, config.graph.sources)
    build_graph(sources, folder, strict=config.data.strict, progress=progress, command=command)
    return folder
