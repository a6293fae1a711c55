"""Run configuration: typed dataclasses loaded from YAML, with dotted ``key=value`` overrides.

Every CLI reads one ``Config``. ``load_config`` merges, in order, the dataclass defaults, a YAML
file and command-line overrides such as ``model.num_latents=4``, and validates the result: an
unknown key or a value of the wrong type raises ``ConfigError`` naming the key and the expected
type. ``save_config`` writes the resolved config beside a checkpoint or a result file.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kgreason.errors import KgreasonError
from kgreason.io import atomic_write_text


class ConfigError(KgreasonError, ValueError):
    """An invalid config file, key or value."""


@dataclass
class DataConfig:
    """Where the datasets come from and how strictly they are read."""

    root: str | None = None
    """Local mirror folder. None: the KGREASON_DATA environment variable, else ../shared/data
    beside the project root, else download from the official URLs into ``cache_dir``."""

    cache_dir: str | None = None
    """Download and model cache. None: KGREASON_CACHE, else ~/.cache/kgreason."""

    strict: bool = True
    """Raise on the first malformed record. False: skip bad records and report how many."""

    dataset: str = "csqa"
    """Dataset trained and evaluated on: csqa or obqa."""

    train_split: str = "ih-train"
    """Training split: ih-train or train for CSQA, train for OBQA."""

    dev_split: str = "ih-dev"
    """Split evaluated after every epoch: ih-dev or dev for CSQA, dev for OBQA."""

    max_examples: int | None = None
    """Use only the first N examples of each split (quick runs and tests). None: all."""

    obqa_with_facts: bool = False
    """OBQA only: prepend the gold open-book fact (``fact1``) to the question."""


@dataclass
class GraphConfig:
    """The knowledge graph and the subgraph retrieved for each question."""

    name: str = "default"
    """Graph folder name under ``dir``."""

    dir: str = "graph_data"
    """Folder holding built graphs; relative paths are taken from the project root."""

    sources: list[str] = field(default_factory=lambda: ["conceptnet4", "cn100k", "atomic"])
    """Mirror sources merged by ``kgreason.graph build``: conceptnet4, cn100k, atomic."""

    max_nodes: int = 200
    """Nodes kept per retrieved subgraph, the most relevant first (QA-GNN keeps 200)."""

    max_hops: int = 2
    """Longest path, in edges, between a question concept and a choice concept: 1 or 2."""

    max_ngram: int = 4
    """Longest word n-gram matched against concept names during grounding."""

    dense_neighbours: int = 5
    """Nodes attached by nearest-neighbour search over node-text embeddings per query."""

    dense_min_score: float = 0.55
    """Minimum cosine similarity for a dense neighbour to be attached."""

    max_paths_per_pair: int = 20
    """Intermediate nodes kept per (question concept, choice concept) pair, by relevance."""

    dense_scope: str = "events"
    """Nodes searched by the dense fallback: events (ATOMIC events), all (every node; embedding them
    takes minutes on a CPU) or none."""


@dataclass
class EncoderConfig:
    """The frozen sentence encoder for node texts, questions and explanations."""

    name: str = "all-MiniLM-L6-v2"
    """A sentence-transformers model: the name of the offline package model, a hub id or a folder."""

    batch_size: int = 256
    """Sentences per encoder call."""

    max_seq_length: int = 128
    """Tokens kept per sentence."""


@dataclass
class ModelConfig:
    """The latent reasoner: GNN, latent pooling and the decoder that reads the latents."""

    decoder: str = "smollm2-135m-instruct"
    """Decoder LM: a known offline name (smollm2-135m-instruct, gemma-3-270m), a hub id or a folder."""

    gguf_file: str | None = None
    """GGUF file name inside ``decoder`` when it is a folder or hub id holding GGUF weights."""

    dtype: str = "float32"
    """Decoder weights dtype: float32, bfloat16 or float16."""

    gnn_layers: int = 2
    """Relation-aware message-passing layers."""

    gnn_hidden: int = 256
    """Hidden size of the GNN node states."""

    gnn_heads: int = 4
    """Attention heads in each GNN layer and in latent pooling."""

    num_bases: int = 8
    """Basis matrices shared by the relation types (basis decomposition); 0 disables it."""

    dropout: float = 0.1
    """Dropout on node states during training."""

    num_latents: int = 4
    """K, the latent commonsense vectors inserted into the decoder input."""

    latent_norm: str = "match"
    """Latent scale: match (norm of the decoder's mean token embedding) or none."""

    lora: bool = False
    """Train LoRA adapters in the decoder; otherwise the decoder stays frozen."""

    lora_rank: int = 8
    """LoRA rank."""

    lora_alpha: float = 16.0
    """LoRA scaling numerator (scale = alpha / rank)."""

    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    """Decoder module names that get LoRA adapters."""

    max_question_tokens: int = 160
    """Decoder tokens kept from the question text, choices included."""

    show_choices: bool = False
    """List the choices in the decoder prompt after the question. Off by default: with the frozen
    SmolLM2 decoder the list lowered zero-shot accuracy on 200 CSQA IH-dev questions from 30.5% to
    22.5% (see kgreason/model/inputs.py)."""

    graph_input: str = "retrieved"
    """retrieved (the question's subgraph) or question (the context node alone: an ablation that
    measures what the graph adds, and needs no built graph)."""

    max_new_tokens: int = 32
    """Longest free-form answer that the decoder writes, in tokens."""


@dataclass
class DistillConfig:
    """Explanation distillation: what the latents are pulled towards."""

    mode: str = "segments"
    """segments (sentence-encoder targets, one per explanation segment), codi (decoder hidden
    states with the written explanation as teacher) or none."""

    weight: float = 1.0
    """Lambda in total loss = answer loss + lambda * distillation loss."""

    loss: str = "cosine"
    """Distance between readout and target: cosine or nmse (MSE of unit vectors)."""

    contrastive: bool = False
    """Add an InfoNCE term that tells each latent its own target apart from the batch's."""

    temperature: float = 0.1
    """InfoNCE temperature."""

    explanation_field: str = "open-ended"
    """CoS-E field used as the explanation: open-ended or selected."""


@dataclass
class TrainConfig:
    """Optimisation and the run folder."""

    epochs: int = 1
    """Passes over the training split."""

    batch_size: int = 8
    """Questions per forward pass."""

    grad_accum: int = 2
    """Forward passes summed before each optimiser step."""

    lr: float = 1e-3
    """Peak AdamW learning rate."""

    weight_decay: float = 0.01
    """AdamW weight decay."""

    warmup_steps: int = 50
    """Optimiser steps of linear warm-up before linear decay."""

    max_grad_norm: float = 1.0
    """Gradient clipping threshold; 0 disables clipping."""

    max_steps: int | None = None
    """Stop after this many optimiser steps. None: run all epochs."""

    eval_every: int | None = None
    """Also evaluate every N optimiser steps. None: once per epoch."""

    save_every: int = 100
    """Write a resumable checkpoint every N optimiser steps."""

    log_every: int = 10
    """Write a CSV log row every N optimiser steps."""

    out_dir: str = "runs/default"
    """Run folder for checkpoints, logs and the resolved config."""

    resume: bool = True
    """Continue from the last checkpoint in ``out_dir`` when one exists."""

    answer_nll_weight: float = 0.0
    """Weight of the gold choice's mean token NLL added to the cross-entropy over choice scores."""

    eval_batch_size: int = 16
    """Questions per forward pass during evaluation."""


@dataclass
class RuntimeConfig:
    """Device, threads and seed."""

    device: str = "auto"
    """auto (CUDA where present, else CPU), cpu, cuda or cuda:N."""

    num_threads: int | None = None
    """torch and OpenMP threads. None: all cores."""

    seed: int = 0
    """Seed for Python, NumPy and torch."""


@dataclass
class Config:
    """The whole configuration of a kgreason run."""

    data: DataConfig = field(default_factory=DataConfig)
    graph: GraphConfig = field(default_factory=GraphConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_CHOICES = {
    "data.dataset": {"csqa", "obqa"},
    "graph.dense_scope": {"events", "all", "none"},
    "model.dtype": {"float32", "bfloat16", "float16"},
    "model.latent_norm": {"match", "none"},
    "model.graph_input": {"retrieved", "question"},
    "distill.mode": {"segments", "codi", "none"},
    "distill.loss": {"cosine", "nmse"},
    "distill.explanation_field": {"open-ended", "selected"},
}

_POSITIVE = {
    "graph.max_nodes", "graph.max_hops", "graph.max_ngram", "encoder.batch_size",
    "encoder.max_seq_length", "model.gnn_layers", "model.gnn_hidden", "model.gnn_heads",
    "model.num_latents", "model.lora_rank", "model.max_question_tokens", "train.epochs",
    "train.batch_size", "train.grad_accum", "train.save_every", "train.log_every",
    "train.eval_batch_size", "model.max_new_tokens",
}


def _type_name(hint: Any) -> str:
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "")


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check ``value`` against the type hint ``hint``; ints are accepted where floats are expected."""
    origin = typing.get_origin(hint)

    if origin in (typing.Union, types.UnionType):
        arguments = typing.get_args(hint)
        if value is None and type(None) in arguments:
            return None
        for argument in arguments:
            if argument is type(None):
                continue
            try:
                return _coerce(value, argument, key)
            except ConfigError:
                pass
        raise ConfigError(f"config key {key!r} expects {_type_name(hint)}, got {value!r}")

    if origin is list:
        (item_hint,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"config key {key!r} expects a list of {_type_name(item_hint)}, got {value!r}")
        return [_coerce(item, item_hint, f"{key}[{index}]") for index, item in enumerate(value)]

    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        # YAML 1.1 reads "3e-4" (no dot) as a string; accept it as the number it is meant to be.
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"config key {key!r} expects float, got {value!r}") from None
    if hint is bool and not isinstance(value, bool):
        raise ConfigError(f"config key {key!r} expects bool (true or false), got {value!r}")
    if hint is int and isinstance(value, bool):
        raise ConfigError(f"config key {key!r} expects int, got {value!r}")
    if isinstance(hint, type) and not isinstance(value, hint):
        raise ConfigError(f"config key {key!r} expects {hint.__name__}, got {value!r} ({type(value).__name__})")
    return value


def _build(cls: type, values: dict[str, Any], prefix: str) -> Any:
    """Create dataclass ``cls`` from a nested dict, rejecting unknown keys and wrong types."""
    if not isinstance(values, dict):
        raise ConfigError(f"config section {prefix.rstrip('.') or 'root'!r} must be a mapping, got {values!r}")

    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        key = prefix + unknown[0]
        raise ConfigError(f"unknown config key {key!r}; known keys in this section: {', '.join(sorted(known))}")

    kwargs = {}
    for name, value in values.items():
        hint = hints[name]
        key = prefix + name
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value, key + ".")
        else:
            kwargs[name] = _coerce(value, hint, key)
    return cls(**kwargs)


def _validate(config: Config) -> None:
    """Check value ranges and enumerations that the type hints cannot express."""
    flat = flatten(config.to_dict())
    for key, allowed in _CHOICES.items():
        if flat[key] not in allowed:
            raise ConfigError(f"config key {key!r} must be one of {sorted(allowed)}, got {flat[key]!r}")
    for key in _POSITIVE:
        if flat[key] < 1:
            raise ConfigError(f"config key {key!r} must be at least 1, got {flat[key]!r}")
    if config.data.max_examples is not None and config.data.max_examples < 1:
        raise ConfigError(f"config key 'data.max_examples' must be at least 1 or null (all), "
                          f"got {config.data.max_examples!r}")
    if config.model.gnn_hidden % config.model.gnn_heads:
        raise ConfigError(
            f"model.gnn_hidden ({config.model.gnn_hidden}) must be divisible by "
            f"model.gnn_heads ({config.model.gnn_heads})"
        )
    if config.graph.max_hops > 2:
        raise ConfigError(f"config key 'graph.max_hops' must be 1 or 2, got {config.graph.max_hops!r}")
    if config.graph.dense_neighbours < 0 or config.graph.max_paths_per_pair < 0:
        raise ConfigError("config keys 'graph.dense_neighbours' and 'graph.max_paths_per_pair' must be >= 0")
    if not 0.0 <= config.model.dropout < 1.0:
        raise ConfigError(f"config key 'model.dropout' must be in [0, 1), got {config.model.dropout!r}")
    if config.train.answer_nll_weight < 0:
        raise ConfigError(f"config key 'train.answer_nll_weight' must be >= 0, got {config.train.answer_nll_weight!r}")
    if config.distill.weight < 0:
        raise ConfigError(f"config key 'distill.weight' must be >= 0, got {config.distill.weight!r}")


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten a nested dict to dotted keys: ``{"a": {"b": 1}}`` becomes ``{"a.b": 1}``."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b=value`` into the key path and the YAML-parsed value (``4`` is an int, ``null`` is None)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key=value (for example model.num_latents=4)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as error:
        raise ConfigError(f"override {text!r}: the value is not valid YAML ({error})") from None
    return key.split("."), value


def _set_path(tree: dict[str, Any], path: list[str], value: Any, text: str) -> None:
    node = tree
    for depth, part in enumerate(path[:-1]):
        child = node.get(part)
        if not isinstance(child, dict):
            dotted = ".".join(path[: depth + 1])
            raise ConfigError(f"override {text!r}: {dotted!r} is not a config section")
        node = child
    node[path[-1]] = value


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _yaml_problem(error: yaml.YAMLError) -> str:
    """Describe a YAML parse error in one line, with its line and column (PyYAML prints several lines)."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    if mark is None:
        return problem
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}; fix the file or start from configs/default.yaml"


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Load defaults, then the YAML file at ``path`` (if any), then ``overrides`` such as ``train.lr=3e-4``.

    Raises ConfigError naming the file or key when the YAML is invalid, a key is unknown or a
    value has the wrong type.
    """
    tree = Config().to_dict()

    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} not found; the shipped configs are in configs/")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"config file {str(path)!r} is not valid YAML: {_yaml_problem(error)}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {str(path)!r} must contain a mapping of sections, got {type(loaded).__name__}")
        unknown = sorted(set(loaded) - set(tree))
        if unknown:
            raise ConfigError(
                f"config file {str(path)!r}: unknown section {unknown[0]!r}; known sections: {', '.join(tree)}"
            )
        tree = _merge(tree, loaded)

    for text in overrides:
        key_path, value = parse_override(text)
        if key_path[0] not in tree:
            raise ConfigError(f"override {text!r}: unknown section {key_path[0]!r}; known sections: {', '.join(tree)}")
        _set_path(tree, key_path, value, text)

    config = _build(Config, tree, "")
    _validate(config)
    return config


def config_to_yaml(config: Config) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)


def save_config(config: Config, path: str | Path) -> None:
    """Write the resolved config as YAML, atomically."""
    atomic_write_text(path, config_to_yaml(config))


def config_from_dict(tree: dict[str, Any]) -> Config:
    """Rebuild a validated Config from ``to_dict()`` output (for example from a checkpoint)."""
    config = _build(Config, _merge(Config().to_dict(), tree), "")
    _validate(config)
    return config
