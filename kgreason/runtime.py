"""Process set-up shared by every entry point: logging, seeds, threads, device and paths."""

from __future__ import annotations

import logging
import os
import random
import sys
from pathlib import Path

from kgreason.errors import KgreasonError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_DATE_FORMAT = "%H:%M:%S"

# Offline use must never wait on a model hub. A user with internet can set HF_HUB_OFFLINE=0.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", os.environ["HF_HUB_OFFLINE"])
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def setup_logging(verbosity: int = 0) -> None:
    """Configure the root logger once: -1 quiet (warnings), 0 info, 1 debug."""
    level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    logging.basicConfig(level=level, format=LOG_FORMAT, datefmt=LOG_DATE_FORMAT, stream=sys.stderr, force=True)

    # Third-party libraries are noisy at INFO; keep them at WARNING unless debugging.
    for name in ("transformers", "sentence_transformers", "datasets", "urllib3", "filelock", "faiss", "httpx"):
        logging.getLogger(name).setLevel(logging.DEBUG if verbosity > 0 else logging.WARNING)

    # transformers draws a "Loading weights" bar for every model it loads, so a quiet run turns its bars off.
    if verbosity < 0:
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
        if "transformers" in sys.modules:
            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()


def set_threads(num_threads: int | None) -> int:
    """Set torch and OpenMP thread counts; None means all available cores. Returns the count used."""
    import torch

    if num_threads is None:
        num_threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    os.environ["OMP_NUM_THREADS"] = str(num_threads)
    torch.set_num_threads(num_threads)
    try:
        import faiss

        faiss.omp_set_num_threads(num_threads)
    except ImportError:
        pass
    return num_threads


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> "torch.device":  # noqa: F821
    """Turn ``auto`` into CUDA when available, else CPU; check that an explicit CUDA device exists."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise KgreasonError(f"runtime.device={name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise KgreasonError(f"runtime.device={name!r} but CUDA is not available; use runtime.device=cpu or auto")
    return device


def project_root() -> Path:
    """The folder holding pyproject.toml above this package (a checkout), else the working directory.

    KGREASON_HOME overrides both.
    """
    if "KGREASON_HOME" in os.environ:
        return Path(os.environ["KGREASON_HOME"]).resolve()
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file():
        return checkout
    return Path.cwd()


def resolve_path(path: str | Path) -> Path:
    """Expand ``~`` and resolve a relative path against the project root."""
    path = Path(os.path.expanduser(str(path)))
    return path if path.is_absolute() else project_root() / path


def cache_dir(configured: str | None = None) -> Path:
    """The download and model cache: the configured folder, else KGREASON_CACHE, else ~/.cache/kgreason."""
    if configured:
        return resolve_path(configured)
    if "KGREASON_CACHE" in os.environ:
        return Path(os.path.expanduser(os.environ["KGREASON_CACHE"])).resolve()
    return Path.home() / ".cache" / "kgreason"


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages that decide numerical results, for metrics and checkpoints."""
    import importlib.metadata
    import platform

    import kgreason

    versions = {"python": platform.python_version(), "kgreason": kgreason.__version__}
    for package in ("torch", "torch-geometric", "transformers", "sentence-transformers",
                    "faiss-cpu", "numpy", "peft", "safetensors"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions
