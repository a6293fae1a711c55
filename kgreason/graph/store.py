"""The embedded graph store: CSR arrays, concept vocabulary and relation table in one folder.

A store folder (``graph_data/<name>/``) holds:

| file | content |
|---|---|
| ``indptr.npy`` | int64 ``[N + 1]``: row ``u`` of the adjacency is ``indptr[u]:indptr[u + 1]`` |
| ``indices.npy`` | int32 ``[2E]``: neighbour node id of each adjacency entry |
| ``edge_relation.npy`` | uint8 ``[2E]``: relation id (reverse ids for the incoming direction) |
| ``edge_weight.npy`` | float32 ``[2E]``: source weight (ConceptNet weight or vote count; 1 elsewhere) |
| ``edge_sources.npy`` | uint8 ``[2E]``: bit mask of the source kinds that state the edge |
| ``node_flags.npy`` | uint8 ``[N]``: source-kind bits, plus ``EVENT_FLAG`` for ATOMIC events |
| ``node_keys.txt`` | the normalised key of node ``i`` on line ``i`` (used for grounding) |
| ``node_texts.txt`` | the readable text of node ``i`` on line ``i`` (embedded and shown) |
| ``relations.json`` | the relation table: ids, names, templates, schema hash |
| ``meta.json`` | sources and their SHA-256, counts, versions, build time, rebuild command, files' SHA-256 |

Every edge (u, r, v) is stored twice, as (u -> v, r) in row u and (v -> u, reverse(r)) in row v, so
one row lists all edges that touch a node. The arrays are memory-mapped on load.

A store is built in a temporary folder beside its target and renamed into place, so a reader sees a
complete store or none. ``GraphStore.open`` checks every file against ``meta.json`` and names the
command that rebuilds a missing, partial or corrupt store. A passed check is recorded in
``.verified.json`` with each file's size and modification time, and a later open of the unchanged
folder skips the hashing (benchmarks/graph.md has the time of both).
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, fields
from functools import cached_property
from pathlib import Path

import numpy as np

import kgreason
from kgreason.errors import KgreasonError
from kgreason.graph.normalize import NORMALISER_VERSION
from kgreason.graph.schema import DEFAULT_SCHEMA, RelationSchema
from kgreason.io import atomic_save_array, atomic_write_text, sha256_file, sha256_text, write_json
from kgreason.runtime import resolve_path

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
"""Version of the store layout; a store of another version must be rebuilt."""

EVENT_FLAG = 0x80
"""Bit in ``node_flags`` of an ATOMIC event (the head of an ATOMIC if-then relation)."""

META_FILE = "meta.json"
VERIFIED_FILE = ".verified.json"
KEYS_FILE = "node_keys.txt"
TEXTS_FILE = "node_texts.txt"
RELATIONS_FILE = "relations.json"


class GraphStoreError(KgreasonError):
    """A graph store folder that is missing, partial, corrupt or of another version."""


@dataclass
class StoreArrays:
    """The numeric part of a store (see the module docstring for shapes)."""

    indptr: np.ndarray
    indices: np.ndarray
    edge_relation: np.ndarray
    edge_weight: np.ndarray
    edge_sources: np.ndarray
    node_flags: np.ndarray | None = None


ARRAY_FILES = tuple(f"{field.name}.npy" for field in fields(StoreArrays))


def graph_folder(config) -> Path:
    """Return the store folder named by a config: ``<graph.dir>/<graph.name>``, relative to the project root."""
    return resolve_path(config.graph.dir) / config.graph.name


def rebuild_command(folder: Path) -> str:
    """Return the command that builds the graph in ``folder``: the recorded one, else the default build."""
    try:
        recorded = json.loads((folder / META_FILE).read_text(encoding="utf-8")).get("command")
    except (OSError, ValueError, AttributeError):
        recorded = None
    if recorded:
        return recorded

    command = "python -m kgreason.graph build"
    if folder.resolve().parent != resolve_path("graph_data").resolve():
        command += f" graph.dir={folder.parent}"
    if folder.name != "default":
        command += f" graph.name={folder.name}"
    return command


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _write_lines(path: Path, lines: list[str]) -> None:
    # Texts come from tab- and line-separated files, so they hold no line breaks; keep it so.
    atomic_write_text(path, "".join(line.replace("\n", " ") + "\n" for line in lines))


def _make_readable(folder: Path) -> None:
    """Give the folder and its files the permissions of the user's umask (temporary files start private)."""
    umask = os.umask(0)
    os.umask(umask)
    for path in folder.iterdir():
        path.chmod(0o666 & ~umask)
    folder.chmod(0o777 & ~umask)


def write_store(output: str | Path, arrays: StoreArrays, keys: list[str], texts: list[str], meta: dict,
                schema: RelationSchema, started: float) -> dict:
    """Write a complete store into a temporary folder beside ``output``, then rename it to ``output``.

    Adds versions, checksums and the build time to ``meta`` and returns it.
    """
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.build-"))
    try:
        for field in fields(StoreArrays):
            atomic_save_array(staging / f"{field.name}.npy", getattr(arrays, field.name))
        _write_lines(staging / KEYS_FILE, keys)
        _write_lines(staging / TEXTS_FILE, texts)
        write_json(staging / RELATIONS_FILE, schema.to_dict())

        checksums = {path.name: sha256_file(path) for path in sorted(staging.iterdir())}
        meta = {
            "format_version": FORMAT_VERSION,
            "normaliser_version": NORMALISER_VERSION,
            "schema_hash": schema.schema_hash(),
            "num_relations": schema.num_relations,
            **meta,
            "versions": {
                "kgreason": kgreason.__version__,
                **{package: _package_version(package) for package in ("simplemma", "lemminflect", "numpy")},
            },
            "built_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "build_seconds": round(time.time() - started, 2),
            "files": checksums,
            "checksum": sha256_text(json.dumps(checksums, sort_keys=True)),
        }
        write_json(staging / META_FILE, meta)
        _make_readable(staging)

        previous = None
        if output.exists():
            previous = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.old-"))
            os.replace(output, previous / output.name)
        os.replace(staging, output)
        if previous is not None:
            shutil.rmtree(previous, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return meta


class GraphStore:
    """A built graph, memory-mapped. Open with ``GraphStore.open(folder)``."""

    def __init__(self, folder: Path, meta: dict, arrays: StoreArrays):
        self.folder = folder
        self.meta = meta
        self.schema = DEFAULT_SCHEMA
        self.indptr = arrays.indptr
        self.indices = arrays.indices
        self.edge_relation = arrays.edge_relation
        self.edge_weight = arrays.edge_weight
        self.edge_sources = arrays.edge_sources
        self.node_flags = arrays.node_flags
        self.num_nodes = len(self.indptr) - 1
        self.num_edges = int(meta["counts"]["edges"])

    @classmethod
    def open(cls, folder: str | Path, verify: bool = True) -> GraphStore:
        """Open the store in ``folder``, checking its files against the checksums in meta.json.

        Raises GraphStoreError naming the folder and the rebuild command when the folder is
        missing, partial, corrupt or was built by an incompatible version.
        """
        folder = Path(folder)
        if not (folder / META_FILE).is_file():
            what = "not found" if not folder.exists() else f"incomplete (no {META_FILE})"
            raise GraphStoreError(f"graph folder {folder} is {what}; build it with: {rebuild_command(folder)}")
        try:
            meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise GraphStoreError(
                f"graph folder {folder} has an unreadable {META_FILE} ({error}); rebuild it with: "
                f"{rebuild_command(folder)}"
            ) from None

        _check_versions(folder, meta)
        if verify:
            _verify_files(folder, meta)

        try:
            arrays = StoreArrays(**{
                field.name: np.load(folder / f"{field.name}.npy", mmap_mode="r", allow_pickle=False)
                for field in fields(StoreArrays)
            })
        except (OSError, ValueError) as error:
            raise GraphStoreError(
                f"graph folder {folder}: an array file cannot be read ({error}); rebuild it with: "
                f"{rebuild_command(folder)}"
            ) from None
        return cls(folder, meta, arrays)

    @property
    def checksum(self) -> str:
        """SHA-256 over the checksums of all store files: identifies this exact graph."""
        return self.meta["checksum"]

    @property
    def name(self) -> str:
        return self.folder.name

    # --- vocabulary ---------------------------------------------------------------------------

    @cached_property
    def keys(self) -> list[str]:
        """Normalised key of each node."""
        return (self.folder / KEYS_FILE).read_text(encoding="utf-8").split("\n")[: self.num_nodes]

    @cached_property
    def texts(self) -> list[str]:
        """Readable text of each node."""
        return (self.folder / TEXTS_FILE).read_text(encoding="utf-8").split("\n")[: self.num_nodes]

    @cached_property
    def key_to_id(self) -> dict[str, int]:
        return {key: index for index, key in enumerate(self.keys)}

    def lookup(self, key: str) -> int | None:
        """Return the node id of a normalised key, or None."""
        return self.key_to_id.get(key)

    def concept_text(self, node_id: int) -> str:
        """Return the readable text of a node (``"play on ice"``)."""
        return self.texts[node_id]

    @cached_property
    def event_ids(self) -> np.ndarray:
        """Ids of the ATOMIC event nodes, sorted."""
        return np.flatnonzero(np.asarray(self.node_flags) & EVENT_FLAG)

    # --- adjacency ----------------------------------------------------------------------------

    def degree(self, node_id: int) -> int:
        return int(self.indptr[node_id + 1] - self.indptr[node_id])

    def neighbors(self, node_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(neighbour ids, relation ids) of every edge leaving ``node_id``, both int arrays ``[degree]``.

        Reverse relation ids mark edges stored in the other direction.
        """
        start, end = int(self.indptr[node_id]), int(self.indptr[node_id + 1])
        return np.asarray(self.indices[start:end]), np.asarray(self.edge_relation[start:end])

    def neighbor_set(self, node_id: int) -> np.ndarray:
        """Sorted unique neighbour ids of ``node_id``."""
        start, end = int(self.indptr[node_id]), int(self.indptr[node_id + 1])
        row = np.asarray(self.indices[start:end])
        if len(row) < 2:
            return row
        keep = np.empty(len(row), dtype=bool)
        keep[0] = True
        np.not_equal(row[1:], row[:-1], out=keep[1:])
        return row[keep]

    def edges_between(self, source: int, target: int) -> list[int]:
        """Relation ids of the edges source -> target (reverse ids for edges stored target -> source)."""
        neighbors, relations = self.neighbors(source)
        left, right = np.searchsorted(neighbors, [target, target + 1])
        return [int(relation) for relation in relations[left:right]]

    def paths(self, source: int, target: int, max_hops: int = 2, limit: int = 20) -> list[list[tuple[int, int, int]]]:
        """Up to ``limit`` paths of at most ``max_hops`` (1 or 2) edges from ``source`` to ``target``.

        A path is a list of (head id, relation id, tail id) edges; direct edges come first.
        """
        if max_hops not in (1, 2):
            raise ValueError(f"max_hops must be 1 or 2, got {max_hops}")
        found = [[(source, relation, target)] for relation in self.edges_between(source, target)]
        if max_hops == 2:
            middle = np.intersect1d(self.neighbor_set(source), self.neighbor_set(target), assume_unique=True)
            for node in middle:
                node = int(node)
                if node in (source, target):
                    continue
                first = self.edges_between(source, node)
                second = self.edges_between(node, target)
                found.append([(source, first[0], node), (node, second[0], target)])
                if len(found) >= limit:
                    break
        return found[:limit]

    def render_path(self, path: list[tuple[int, int, int]]) -> str:
        """Render a path as sentences from the relation templates, joined by "; "."""
        return "; ".join(
            self.schema.render(relation, self.concept_text(head), self.concept_text(tail))
            for head, relation, tail in path
        )


def _check_versions(folder: Path, meta: dict) -> None:
    expected = {
        "format_version": FORMAT_VERSION,
        "normaliser_version": NORMALISER_VERSION,
        "schema_hash": DEFAULT_SCHEMA.schema_hash(),
    }
    for key, value in expected.items():
        if meta.get(key) != value:
            raise GraphStoreError(
                f"graph folder {folder} was built with {key} {meta.get(key)!r}, but this kgreason uses {value!r}; "
                f"rebuild it with: {rebuild_command(folder)}"
            )


def _file_stamp(folder: Path, names: list[str]) -> dict[str, list[int]]:
    stamp = {}
    for name in names:
        status = (folder / name).stat()
        stamp[name] = [status.st_size, status.st_mtime_ns]
    return stamp


def _verify_files(folder: Path, meta: dict) -> None:
    """Check every file listed in meta.json; skip the hashing when ``.verified.json`` matches."""
    checksums = meta.get("files")
    if not isinstance(checksums, dict) or not checksums:
        raise GraphStoreError(f"graph folder {folder}: {META_FILE} lists no file checksums; "
                              f"rebuild it with: {rebuild_command(folder)}")
    names = sorted(checksums)
    required = [*ARRAY_FILES, KEYS_FILE, TEXTS_FILE, RELATIONS_FILE]
    missing = [name for name in sorted(set(names) | set(required)) if not (folder / name).is_file()]
    if missing:
        raise GraphStoreError(
            f"graph folder {folder} is partial: {', '.join(missing)} missing; rebuild it with: "
            f"{rebuild_command(folder)}"
        )

    stamp = {"checksum": meta.get("checksum"), "files": _file_stamp(folder, names)}
    try:
        if json.loads((folder / VERIFIED_FILE).read_text(encoding="utf-8")) == stamp:
            return
    except (OSError, ValueError):
        pass

    started = time.perf_counter()
    for name in names:
        if sha256_file(folder / name) != checksums[name]:
            raise GraphStoreError(
                f"graph folder {folder} is corrupt: {name} does not match its checksum in {META_FILE}; "
                f"rebuild it with: {rebuild_command(folder)}"
            )
    logger.debug("verified %d files in %s in %.2f s", len(names), folder, time.perf_counter() - started)

    try:
        write_json(folder / VERIFIED_FILE, stamp)
    except OSError as error:
        logger.debug("could not record the verification of %s (%s); it will be hashed again next time", folder, error)
