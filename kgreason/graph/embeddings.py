"""Sentence embeddings of node texts and questions, computed once and cached on disk by content hash.

The cache for one encoder lives in ``<cache>/embeddings/<encoder>-<digest>/``, where the digest
covers the encoder name and its maximum sequence length. Each text is keyed by the first 16 bytes
of the SHA-256 of its UTF-8 bytes. So every graph, question and run that embeds the same text with
the same encoder shares the vector, and rebuilding a graph leaves the cache valid.

New vectors are appended as chunk files (``chunk-*.npy``, a structured array of key and float32
vector, written atomically). Opening the cache reads every chunk into memory. Many small chunks
are merged into one when the cache is opened, under a file lock so that two processes do not
merge at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from kgreason.io import atomic_save_array

logger = logging.getLogger(__name__)

KEY_BYTES = 16
MAX_CHUNKS = 32
"""Chunk files beyond which opening the cache merges them into one."""


def text_key(text: str) -> bytes:
    """Return the cache key of ``text``: the first 16 bytes of its SHA-256."""
    return hashlib.sha256(text.encode("utf-8")).digest()[:KEY_BYTES]


def encoder_folder_name(name: str, max_seq_length: int) -> str:
    """Return a readable, unique folder name for an encoder and its maximum sequence length."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name or name)[:48]
    digest = hashlib.sha256(f"{name}\0{max_seq_length}".encode("utf-8")).hexdigest()[:12]
    return f"{readable}-{digest}"


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    with open(folder / ".lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class EmbeddingCache:
    """Text -> L2-normalised float32 vector ``[dim]`` for one sentence encoder, backed by disk.

    ``embed(texts)`` returns cached vectors and encodes only the texts it has not seen; ``flush()``
    writes the new vectors as one chunk. The encoder is loaded on the first cache miss, so a fully
    warm cache never loads it.
    """

    def __init__(self, root: str | Path, encoder_name: str = "all-MiniLM-L6-v2", max_seq_length: int = 128,
                 batch_size: int = 256, device: str = "cpu"):
        self.encoder_name = encoder_name
        self.max_seq_length = max_seq_length
        self.batch_size = batch_size
        self.device = device
        self.folder = Path(root) / encoder_folder_name(encoder_name, max_seq_length)
        self.folder.mkdir(parents=True, exist_ok=True)

        self.rows: dict[bytes, int] = {}
        self._vectors: np.ndarray | None = None
        self._size = 0
        self._flushed = 0
        self._pending: list[bytes] = []
        self.encoded = 0
        """Texts encoded by this process (cache misses)."""

        self._load()

    # --- disk ---------------------------------------------------------------------------------

    def _chunk_files(self) -> list[Path]:
        return sorted(self.folder.glob("chunk-*.npy"))

    def _read_chunks(self, paths: list[Path]) -> list[np.ndarray]:
        chunks = []
        for path in paths:
            try:
                chunk = np.load(path, allow_pickle=False)
            except FileNotFoundError:
                continue  # merged away by another process after the listing
            except (OSError, ValueError) as error:
                logger.warning("ignoring unreadable embedding chunk %s (%s); its texts will be encoded again",
                               path, error)
                continue
            if chunk.dtype.names != ("key", "vector"):
                logger.warning("ignoring embedding chunk %s with unexpected fields %s", path, chunk.dtype.names)
                continue
            chunks.append(chunk)
        return chunks

    def _load(self) -> None:
        paths = self._chunk_files()
        if len(paths) > MAX_CHUNKS:
            self._merge_chunks()
            paths = self._chunk_files()
        chunks = self._read_chunks(paths)
        if not chunks:
            return

        dim = chunks[0]["vector"].shape[1]
        merged = np.concatenate([chunk for chunk in chunks if chunk["vector"].shape[1] == dim])
        _, first = np.unique(merged["key"], return_index=True)
        merged = merged[np.sort(first)]

        self._size = self._flushed = len(merged)
        self._vectors = np.empty((max(self._size, 1024), dim), dtype=np.float32)
        self._vectors[: self._size] = merged["vector"]
        self.rows = dict(zip(merged["key"].tolist(), range(self._size)))
        logger.debug("embedding cache %s: %d vectors from %d chunks", self.folder, self._size, len(chunks))

    def _merge_chunks(self) -> None:
        """Rewrite all chunks as one, so that opening the cache reads one file."""
        with _locked(self.folder):
            paths = self._chunk_files()
            if len(paths) <= MAX_CHUNKS:
                return
            chunks = self._read_chunks(paths)
            if not chunks:
                return
            merged = np.concatenate(chunks)
            _, first = np.unique(merged["key"], return_index=True)
            merged = merged[np.sort(first)]
            atomic_save_array(self.folder / f"chunk-{time.time_ns():020d}-{os.getpid()}-merged.npy", merged)
            for path in paths:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            logger.info("merged %d embedding chunks in %s into one of %d vectors", len(paths), self.folder,
                        len(merged))

    def flush(self) -> int:
        """Write the vectors encoded since the last flush as a new chunk; returns how many."""
        count = self._size - self._flushed
        if count == 0:
            return 0
        dim = self._vectors.shape[1]
        chunk = np.empty(count, dtype=[("key", f"V{KEY_BYTES}"), ("vector", np.float32, (dim,))])
        chunk["key"] = np.frombuffer(b"".join(self._pending), dtype=f"V{KEY_BYTES}")
        chunk["vector"] = self._vectors[self._flushed:self._size]
        atomic_save_array(self.folder / f"chunk-{time.time_ns():020d}-{os.getpid()}.npy", chunk)
        self._flushed = self._size
        self._pending.clear()
        return count

    # --- lookup and encoding ------------------------------------------------------------------

    @property
    def dim(self) -> int | None:
        return None if self._vectors is None else self._vectors.shape[1]

    def __len__(self) -> int:
        return self._size

    def _append(self, keys: list[bytes], vectors: np.ndarray) -> None:
        if self._vectors is None:
            self._vectors = np.empty((max(1024, 2 * len(keys)), vectors.shape[1]), dtype=np.float32)
        if self._size + len(keys) > len(self._vectors):
            capacity = max(2 * len(self._vectors), self._size + len(keys))
            grown = np.empty((capacity, self._vectors.shape[1]), dtype=np.float32)
            grown[: self._size] = self._vectors[: self._size]
            self._vectors = grown
        for key, vector in zip(keys, vectors):
            self.rows[key] = self._size
            self._vectors[self._size] = vector
            self._size += 1
        self._pending.extend(keys)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Run the sentence encoder on ``texts`` (no cache): L2-normalised float32 ``[len(texts), dim]``."""
        from kgreason.embedding import load_sentence_encoder

        model = load_sentence_encoder(self.encoder_name, self.device, self.max_seq_length)
        vectors = model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                               convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)

    def rows_for(self, texts: Sequence[str]) -> np.ndarray:
        """Return the row of each text in ``vectors``, encoding the texts not cached yet; int64 ``[len(texts)]``."""
        keys = [text_key(text) for text in texts]
        missing: dict[bytes, str] = {}
        for key, text in zip(keys, texts):
            if key not in self.rows and key not in missing:
                missing[key] = text
        if missing:
            started = time.perf_counter()
            vectors = self.encode(list(missing.values()))
            self._append(list(missing), vectors)
            self.encoded += len(missing)
            logger.debug("encoded %d texts in %.2f s", len(missing), time.perf_counter() - started)
        return np.fromiter((self.rows[key] for key in keys), dtype=np.int64, count=len(keys))

    @property
    def vectors(self) -> np.ndarray:
        """All cached vectors, ``[len(self), dim]`` (a view: do not keep it across ``embed`` calls)."""
        if self._vectors is None:
            return np.zeros((0, 0), dtype=np.float32)
        return self._vectors[: self._size]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return the vectors of ``texts``, from the cache or freshly encoded: float32 ``[len(texts), dim]``."""
        rows = self.rows_for(texts)
        if len(rows) == 0:
            return np.zeros((0, self.dim or 0), dtype=np.float32)
        return self._vectors[rows]
