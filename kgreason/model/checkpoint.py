"""Checkpoints: the trainable weights as safetensors plus a JSON file that says what they fit.

A checkpoint is a folder with

- ``model.safetensors``: graph encoder, latent pooler, readout head (and LoRA adapters), never the
  frozen decoder;
- ``checkpoint.json``: the resolved config, the backbone id, the relation schema hash, K, the
  sentence encoder, package versions and training progress.

Loading checks the checkpoint against the decoder, the graph schema and K in use and raises
``CheckpointMismatchError`` naming both sides when they differ.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save

from kgreason.config import Config, ConfigError, config_from_dict, parse_override
from kgreason.errors import KgreasonError
from kgreason.io import atomic_write_bytes, write_json
from kgreason.runtime import package_versions

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"
METADATA_FILE = "checkpoint.json"
FORMAT_VERSION = 1
# Config keys that change the weights' shapes or meaning; an override may not change them.
ARCHITECTURE_KEYS = (
    "model.decoder", "model.gguf_file", "model.num_latents", "model.gnn_layers", "model.gnn_hidden",
    "model.gnn_heads", "model.num_bases", "model.latent_norm", "model.lora", "model.lora_rank",
    "model.lora_targets", "encoder.name", "distill.mode",
)


class CheckpointError(KgreasonError):
    """A checkpoint folder that is missing, incomplete or unreadable."""


class CheckpointMismatchError(KgreasonError, ValueError):
    """A checkpoint that does not fit the decoder, graph schema or K in use."""


def save_checkpoint(folder: str | Path, reasoner, config: Config, schema_hash: str, num_relations: int,
                    node_feature_dim: int, extra: dict[str, Any] | None = None) -> Path:
    """Write ``reasoner``'s trainable weights and metadata into ``folder`` (each file atomically)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = reasoner.trainable_state_dict()
    atomic_write_bytes(folder / WEIGHTS_FILE, save(state))

    metadata = {
        "format": FORMAT_VERSION,
        "backbone_id": reasoner.backbone_id,
        "decoder": config.model.decoder,
        "schema_hash": schema_hash,
        "num_relations": num_relations,
        "num_latents": config.model.num_latents,
        "encoder": config.encoder.name,
        "node_feature_dim": node_feature_dim,
        "token_embedding_norm": reasoner.token_embedding_norm,
        "trainable_parameters": int(sum(tensor.numel() for tensor in state.values())),
        "versions": package_versions(),
        "config": config.to_dict(),
        **(extra or {}),
    }
    write_json(folder / METADATA_FILE, metadata)
    return folder


DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "resources" / "default_model"
"""Folder of the shipped default model (a checkpoint folder inside the package)."""


def repair_hint(folder: str | Path) -> str:
    """Say how to repair a broken checkpoint ``folder``: restore the shipped model, or train again."""
    if Path(folder).resolve() == DEFAULT_MODEL_DIR:
        return ("restore the shipped model with: git checkout -- kgreason/resources/default_model "
                "(or reinstall kgreason)")
    return "train again with python -m kgreason.train"


def read_metadata(folder: str | Path) -> dict[str, Any]:
    """The parsed ``checkpoint.json`` of ``folder``."""
    folder = Path(folder)
    path = folder / METADATA_FILE
    if not folder.is_dir():
        raise CheckpointError(f"checkpoint folder {str(folder)!r} not found; train one with python -m kgreason.train")
    if not path.is_file() or not (folder / WEIGHTS_FILE).is_file():
        raise CheckpointError(
            f"checkpoint {str(folder)!r} is incomplete: it needs {METADATA_FILE} and {WEIGHTS_FILE}; "
            f"{repair_hint(folder)}"
        )
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path} is not valid JSON ({error}); the checkpoint is corrupt: {repair_hint(folder)}") from None
    if metadata.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"{path} has format {metadata.get('format')!r}, this kgreason reads {FORMAT_VERSION}")
    return metadata


def load_weights(folder: str | Path):
    path = Path(folder) / WEIGHTS_FILE
    try:
        return load_file(str(path))
    except Exception as error:  # safetensors raises its own SafetensorError type for corrupt files
        raise CheckpointError(f"{path} could not be read ({error}); the checkpoint is corrupt: {repair_hint(folder)}") from None


def apply_overrides(config: Config, overrides: list[str] | dict[str, Any] | None) -> Config:
    """Return ``config`` with dotted overrides (``["runtime.device=cpu"]`` or ``{"runtime.device": "cpu"}``)."""
    if not overrides:
        return config
    pairs = overrides.items() if isinstance(overrides, dict) else (parse_override(text) for text in overrides)
    tree = config.to_dict()
    for key, value in pairs:
        path = key.split(".") if isinstance(key, str) else list(key)
        node = tree
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"override {'.'.join(path)!r}: {part!r} is not a config section")
            node = node[part]
        if path[-1] not in node:
            raise ConfigError(f"unknown config key {'.'.join(path)!r}")
        node[path[-1]] = value
    return config_from_dict(tree)


def check_architecture(metadata: dict[str, Any], requested: Config, folder: str | Path) -> None:
    """Raise CheckpointMismatchError when ``requested`` changes a key in ARCHITECTURE_KEYS."""
    from kgreason.config import flatten

    stored = flatten(metadata["config"])
    wanted = flatten(requested.to_dict())
    for key in ARCHITECTURE_KEYS:
        if key in stored and stored[key] != wanted[key]:
            raise CheckpointMismatchError(
                f"checkpoint {str(folder)!r} was trained with {key}={stored[key]!r} but {key}={wanted[key]!r} was "
                "requested; drop that override or train a checkpoint with it"
            )


def check_backbone(metadata: dict[str, Any], backbone_id: str, folder: str | Path) -> None:
    if metadata["backbone_id"] != backbone_id:
        raise CheckpointMismatchError(
            f"checkpoint {str(folder)!r} was trained on decoder {metadata['backbone_id']!r} but the loaded decoder "
            f"is {backbone_id!r}; load the decoder it was trained with or train a new checkpoint"
        )


def check_schema(metadata: dict[str, Any], schema_hash: str, num_relations: int, folder: str | Path) -> None:
    if metadata["schema_hash"] != schema_hash or metadata["num_relations"] != num_relations:
        raise CheckpointMismatchError(
            f"checkpoint {str(folder)!r} was trained with graph relation schema {metadata['schema_hash'][:12]} "
            f"({metadata['num_relations']} relations) but the graph in use has schema {schema_hash[:12]} "
            f"({num_relations} relations); use a graph built with the checkpoint's schema or train again"
        )
