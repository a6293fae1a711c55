"""On-disk cache of question graphs, filled by ``python -m kgreason.graph ground`` or on demand.

The cache folder is ``<cache>/question_graphs/<graph name>-<digest>/``. The digest covers the graph
store checksum, the retrieval settings, the encoder, the relation schema and the retrieval
version, so changing any of them starts a new folder instead of reusing stale graphs.

Questions are stored in shards (``shard-<digest>.safetensors``), each written atomically once all
its questions are retrieved. A shard is named by the hash of its questions, so rerunning the same
split finds the finished shards and computes only the rest: an interrupted run resumes at the
first unfinished shard. A question is keyed by the SHA-256 of its text and choices, so the same
question in two splits or datasets is retrieved once.

Node features are not stored: they are the node-text embeddings, read back from the embedding
cache by node id when the graphs are loaded, which keeps a shard about 50x smaller.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file, save
from torch_geometric.data import Data
from tqdm import tqdm

from kgreason.graph.retrieval import RETRIEVAL_VERSION, SubgraphRetriever
from kgreason.io import atomic_write_bytes

logger = logging.getLogger(__name__)

CACHE_FORMAT = 1
DEFAULT_SHARD_SIZE = 256
"""Questions per shard: the work an interrupted run can lose."""


def question_key(question: str, choices: Sequence[str]) -> str:
    """Content key of a question: SHA-256 of its text and choices."""
    payload = json.dumps([question, list(choices)], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def cache_folder(retriever: SubgraphRetriever, root: Path) -> Path:
    """Return the folder under ``root`` for graphs made by ``retriever`` (see the module docstring)."""
    identity = {
        "format": CACHE_FORMAT,
        "retrieval_version": RETRIEVAL_VERSION,
        "graph_checksum": retriever.store.checksum,
        "schema_hash": retriever.schema.schema_hash(),
        "settings": retriever.settings.to_dict(),
        "encoder": retriever.cache.encoder_name,
        "max_seq_length": retriever.cache.max_seq_length,
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode("utf-8")).hexdigest()[:16]
    return root / f"{retriever.store.name}-{digest}"


def _shard_name(keys: Sequence[str]) -> str:
    return "shard-" + hashlib.sha256("\n".join(keys).encode("utf-8")).hexdigest()[:20] + ".safetensors"


def _pack(keys: Sequence[str], questions: Sequence[str], graphs: Sequence[Data]) -> bytes:
    """Concatenate the graphs of one shard into flat arrays with offsets."""
    node_counts = [graph.num_nodes for graph in graphs]
    edge_counts = [graph.edge_index.shape[1] for graph in graphs]
    tensors = {
        "node_ptr": np.concatenate([[0], np.cumsum(node_counts)]).astype(np.int64),
        "edge_ptr": np.concatenate([[0], np.cumsum(edge_counts)]).astype(np.int64),
        "node_id": np.concatenate([graph.node_id.numpy() for graph in graphs]).astype(np.int64),
        "node_type": np.concatenate([graph.node_type.numpy() for graph in graphs]).astype(np.int8),
        "node_choice": np.concatenate([graph.node_choice.numpy() for graph in graphs]).astype(np.int16),
        "relevance": np.concatenate([graph.relevance.numpy() for graph in graphs]).astype(np.float32),
        "edge_index": np.concatenate([graph.edge_index.numpy() for graph in graphs], axis=1).astype(np.int32),
        "edge_type": np.concatenate([graph.edge_type.numpy() for graph in graphs]).astype(np.int16),
    }
    metadata = {
        "keys": json.dumps(list(keys)),
        "questions": json.dumps(list(questions), ensure_ascii=False),
        "question_concepts": json.dumps([graph.question_concepts for graph in graphs], ensure_ascii=False),
        "choice_concepts": json.dumps([graph.choice_concepts for graph in graphs], ensure_ascii=False),
    }
    return save(tensors, metadata=metadata)


@dataclass
class _Shard:
    path: Path
    keys: list[str]
    questions: list[str]
    question_concepts: list[list[str]]
    choice_concepts: list[list[list[str]]]


def _read_shard_metadata(path: Path) -> _Shard | None:
    try:
        with safe_open(str(path), framework="np") as handle:
            metadata = handle.metadata() or {}
        return _Shard(path, json.loads(metadata["keys"]), json.loads(metadata["questions"]),
                      json.loads(metadata["question_concepts"]), json.loads(metadata["choice_concepts"]))
    except (OSError, SafetensorError, KeyError, ValueError) as error:
        logger.warning("ignoring unreadable question-graph shard %s (%s); its questions will be retrieved again",
                       path, error)
        return None


class QuestionGraphCache:
    """The shards of one cache folder, indexed by question key."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.shards: dict[str, _Shard] = {}
        self.location: dict[str, tuple[str, int]] = {}
        for path in sorted(folder.glob("shard-*.safetensors")):
            self._add(path)

    def _add(self, path: Path) -> None:
        shard = _read_shard_metadata(path)
        if shard is None:
            return
        self.shards[path.name] = shard
        for position, key in enumerate(shard.keys):
            self.location.setdefault(key, (path.name, position))

    def __contains__(self, key: str) -> bool:
        return key in self.location

    def has_shard(self, keys: Sequence[str]) -> bool:
        return _shard_name(keys) in self.shards

    def write(self, keys: Sequence[str], questions: Sequence[str], graphs: Sequence[Data]) -> Path:
        """Store ``graphs`` (one per key) as a new shard, atomically."""
        path = self.folder / _shard_name(keys)
        atomic_write_bytes(path, _pack(keys, questions, graphs))
        self._add(path)
        return path

    def load(self, keys: Sequence[str], retriever: SubgraphRetriever) -> list[Data]:
        """Load the graphs of ``keys`` (all cached), with node features from the embedding cache."""
        wanted: dict[str, list[tuple[int, int]]] = {}
        for index, key in enumerate(keys):
            shard_name, position = self.location[key]
            wanted.setdefault(shard_name, []).append((index, position))

        graphs: list[Data | None] = [None] * len(keys)
        for shard_name, requests in wanted.items():
            shard = self.shards[shard_name]
            arrays = load_file(str(shard.path))
            for index, position in requests:
                graphs[index] = _unpack(arrays, shard, position, retriever)

        # Features are re-encoded only when the embedding cache was cleared since the shards were written.
        retriever.cache.flush()
        return graphs


def _unpack(arrays: dict[str, np.ndarray], shard: _Shard, position: int, retriever: SubgraphRetriever) -> Data:
    node_start, node_end = arrays["node_ptr"][position], arrays["node_ptr"][position + 1]
    edge_start, edge_end = arrays["edge_ptr"][position], arrays["edge_ptr"][position + 1]
    node_id = arrays["node_id"][node_start:node_end]

    question_row = retriever.cache.rows_for([shard.questions[position]])
    x = np.concatenate([retriever.cache.vectors[question_row], retriever.node_embeddings(node_id[1:])])
    graph = Data(
        x=torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
        node_type=torch.from_numpy(arrays["node_type"][node_start:node_end].astype(np.int64)),
        node_choice=torch.from_numpy(arrays["node_choice"][node_start:node_end].astype(np.int64)),
        relevance=torch.from_numpy(arrays["relevance"][node_start:node_end].copy()),
        edge_index=torch.from_numpy(arrays["edge_index"][:, edge_start:edge_end].astype(np.int64)),
        edge_type=torch.from_numpy(arrays["edge_type"][edge_start:edge_end].astype(np.int64)),
        node_id=torch.from_numpy(node_id.copy()),
        num_nodes=int(node_end - node_start),
    )
    graph.question_concepts = shard.question_concepts[position]
    graph.choice_concepts = shard.choice_concepts[position]
    return graph


@dataclass
class GroundReport:
    """Counts and timing of one ``ground_examples`` run."""

    questions: int = 0
    shards_total: int = 0
    shards_reused: int = 0
    shards_written: int = 0
    seconds: float = 0.0
    cache: QuestionGraphCache | None = None


def _chunks(items: list, size: int) -> list[list]:
    return [items[start:start + size] for start in range(0, len(items), size)]


def question_graph_root(config) -> Path:
    from kgreason.runtime import cache_dir

    return cache_dir(config.data.cache_dir) / "question_graphs"


def ground_examples(retriever: SubgraphRetriever, examples: Sequence, root: Path,
                    shard_size: int = DEFAULT_SHARD_SIZE, progress: bool = True,
                    on_shard: Callable[[Path], None] | None = None) -> GroundReport:
    """Retrieve and cache the question graph of every example not cached yet, shard by shard.

    ``examples`` need ``.question`` and ``.choice_texts``. Shards are cut in example order, so a
    rerun over the same examples recognises every shard it finished before. ``on_shard`` is called
    with the path of each shard written.
    """
    started = time.perf_counter()
    cache = QuestionGraphCache(cache_folder(retriever, root))
    report = GroundReport(questions=len(examples), cache=cache)

    unique: dict[str, object] = {}
    for example in examples:
        unique.setdefault(question_key(example.question, example.choice_texts), example)
    chunks = _chunks(list(unique.items()), shard_size)
    report.shards_total = len(chunks)

    with tqdm(total=len(unique), desc="question graphs", unit=" questions", disable=not progress) as bar:
        for chunk in chunks:
            keys = [key for key, _ in chunk]
            if cache.has_shard(keys) or all(key in cache for key in keys):
                report.shards_reused += 1
                bar.update(len(chunk))
                continue
            items = [(example.question, example.choice_texts) for _, example in chunk]
            graphs = retriever.retrieve_many(items)
            path = cache.write(keys, [question for question, _ in items], graphs)
            report.shards_written += 1
            bar.update(len(chunk))
            if on_shard is not None:
                on_shard(path)

    report.seconds = time.perf_counter() - started
    return report


def load_question_graphs(config, examples: Sequence, progress: bool = True,
                         retriever: SubgraphRetriever | None = None) -> list[Data]:
    """Return one question graph per example, in order, read from the cache; retrieve what is missing.

    The graphs match ``SubgraphRetriever.retrieve(example.question, example.choice_texts)``.
    """
    if not examples:
        return []
    retriever = retriever or SubgraphRetriever.from_config(config)
    root = question_graph_root(config)
    report = ground_examples(retriever, examples, root, progress=progress)
    if report.shards_written:
        logger.info("retrieved and cached %d new shards of question graphs in %.1f s", report.shards_written,
                    report.seconds)

    keys = [question_key(example.question, example.choice_texts) for example in examples]
    return report.cache.load(keys, retriever)
