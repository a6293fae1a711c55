"""The training recipe: setup, loop, evaluate, save.

Run folder (``train.out_dir``):

- ``config.yaml``: the resolved config;
- ``log.csv``: one row per ``train.log_every`` optimiser steps and one per evaluation;
- ``best/``: the checkpoint with the highest dev accuracy so far;
- ``last/``: the latest checkpoint plus ``resume.pt`` (optimiser, scheduler, RNG states and the
  position in the epoch). It is written every ``train.save_every`` steps, at the end of every epoch
  and when the run is interrupted. A new run with ``train.resume=true`` continues from there, at
  the same step and batch;
- ``metrics.json``: the final summary.

Under torchrun every process trains on its own share of each batch order (DDP averages the
gradients); only rank 0 evaluates and writes files.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from kgreason.config import Config, save_config
from kgreason.data import load_examples, locator_from_config
from kgreason.errors import KgreasonError
from kgreason.io import atomic_write, write_json
from kgreason.model.backbones import Backbone, load_backbone
from kgreason.model.checkpoint import (
    METADATA_FILE, check_architecture, check_schema, load_weights, read_metadata, save_checkpoint,
)
from kgreason.model.diversity import latent_diversity, nan_to_none, prediction_diversity
from kgreason.model.graphs import GraphSource, graph_source_from_config
from kgreason.model.inputs import InputBuilder
from kgreason.model.predictor import Predictor, accuracy
from kgreason.model.reasoner import LatentReasoner
from kgreason.runtime import cache_dir, resolve_device, resolve_path, set_seed
from kgreason.training.data import QuestionSet, build_question_set, epoch_order
from kgreason.training.distributed import (
    all_reduce_mean, barrier, broadcast_object, init_distributed, shutdown,
)
from kgreason.training.log import CsvLog

logger = logging.getLogger(__name__)

RESUME_FILE = "resume.pt"


@dataclass
class TrainResult:
    """Outcome of a finished run and the paths of its outputs."""

    run_dir: Path
    steps: int
    best_dev_accuracy: float | None
    best_checkpoint: Path | None
    last_checkpoint: Path
    effective_batch_size: int


@dataclass
class DevResult:
    """Result of one evaluation on the dev split."""

    accuracy: float

    latent_cos_questions: float
    """Mean cosine between two dev questions' latents in the same slot (``kgreason.model.diversity``)."""

    latent_cos_slots: float
    """Mean cosine between two slots of one dev question; NaN with one slot."""


@dataclass
class Position:
    """Progress through training, taken right after an optimiser step."""

    step: int = 0
    epoch: int = 0
    next_batch: int = 0
    """Index, within this process's batches of ``epoch``, of the first batch not yet trained on."""

    rng: dict | None = None


def linear_schedule(warmup_steps: int, total_steps: int):
    """Learning-rate factor: linear warm-up to 1 over ``warmup_steps``, then linear decay to 0 at ``total_steps``."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        remaining = total_steps - step
        return max(0.0, remaining / max(1, total_steps - warmup_steps))
    return factor


def _rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


class TrainingRecipe:
    """One training run of the latent reasoner; ``run()`` does setup, the loop and the final save."""

    def __init__(self, config: Config, graph_source: GraphSource | None = None, backbone: Backbone | None = None):
        self.config = config
        self.graph_source = graph_source
        self.backbone = backbone
        self.run_dir = resolve_path(config.train.out_dir)

    # ----------------------------------------------------------------------------------------- setup
    def setup(self) -> None:
        config = self.config
        device = resolve_device(config.runtime.device)
        self.process = init_distributed(device)
        if device.type == "cuda" and self.process.distributed:
            device = torch.device("cuda", self.process.local_rank)
        self.device = device

        self.graph_source = self.graph_source or graph_source_from_config(config)
        self.train_set, self.dev_set = self._load_question_sets()

        # Seeding here, not only in the CLI, makes the initial weights a function of runtime.seed alone.
        set_seed(config.runtime.seed + self.process.rank)
        backbone = self.backbone or load_backbone(config.model.decoder, config.model.gguf_file, config.model.dtype,
                                                  cache_dir(config.data.cache_dir))
        self.reasoner = LatentReasoner(config, backbone, self.graph_source.num_relations,
                                       self.graph_source.node_feature_dim).to(device)
        self.builder = InputBuilder.from_config(backbone.tokenizer, config)
        parameters = [parameter for parameter in self.reasoner.parameters() if parameter.requires_grad]
        logger.info("trainable weights: %d; decoder %s frozen%s", sum(p.numel() for p in parameters),
                    backbone.backbone_id, " with LoRA adapters" if config.model.lora else "")

        self.optimizer = torch.optim.AdamW(parameters, lr=config.train.lr, weight_decay=config.train.weight_decay)
        self.batches_per_epoch = math.ceil(len(epoch_order(len(self.train_set), 0, 0, self.process.rank,
                                                           self.process.world_size)) / config.train.batch_size)
        steps_per_epoch = math.ceil(self.batches_per_epoch / config.train.grad_accum)
        self.total_steps = steps_per_epoch * config.train.epochs
        if config.train.max_steps is not None:
            self.total_steps = min(self.total_steps, config.train.max_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, linear_schedule(config.train.warmup_steps, self.total_steps)
        )
        self.effective_batch_size = config.train.batch_size * config.train.grad_accum * self.process.world_size

        self.model = self.reasoner
        if self.process.distributed:
            self.model = DistributedDataParallel(self.reasoner, device_ids=[device.index] if device.type == "cuda" else None)

        self.position = Position()
        self.best_dev_accuracy: float | None = None
        self.last_evaluated_step: int | None = None
        resumed = self._maybe_resume()
        self.log = CsvLog(self.run_dir / "log.csv", resume_step=self.position.step if resumed else -1)
        if self.process.is_main:
            save_config(config, self.run_dir / "config.yaml")
        logger.info(
            "training on %d questions (%d dev), %d steps of effective batch %d (%d x %d accumulation x %d processes)",
            len(self.train_set), len(self.dev_set), self.total_steps, self.effective_batch_size,
            config.train.batch_size, config.train.grad_accum, self.process.world_size,
        )

    def _load_question_sets(self) -> tuple[QuestionSet, QuestionSet]:
        config = self.config
        locator = locator_from_config(config)
        sets = []
        for split, with_targets in ((config.data.train_split, True), (config.data.dev_split, False)):
            examples = load_examples(config.data.dataset, split, locator, strict=config.data.strict,
                                     with_facts=config.data.obqa_with_facts, max_examples=config.data.max_examples)
            examples = [example for example in examples if example.answer_index is not None]
            if not examples and split == config.data.train_split:
                raise KgreasonError(f"{config.data.dataset} {split} has no answered questions to train on")
            # Rank 0 computes and caches graphs and targets first; the other processes then read the caches.
            if not self.process.is_main:
                barrier(self.process)
            graphs = self.graph_source.graphs_for(examples, progress=self.process.is_main)
            question_set = build_question_set(examples, graphs, config, with_targets)
            if self.process.is_main:
                barrier(self.process)
            sets.append(question_set)
        return sets[0], sets[1]

    def _maybe_resume(self) -> bool:
        last = self.run_dir / "last"
        if not (self.config.train.resume and (last / RESUME_FILE).is_file()):
            return False
        metadata = read_metadata(last)
        check_architecture(metadata, self.config, last)
        check_schema(metadata, self.graph_source.schema_hash, self.graph_source.num_relations, last)
        self.reasoner.load_trainable_state_dict(load_weights(last))
        state = torch.load(last / RESUME_FILE, map_location="cpu", weights_only=False)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.position = Position(**state["position"])
        self.best_dev_accuracy = state["best_dev_accuracy"]
        if self.position.rng is not None:
            _set_rng_state(self.position.rng)
        logger.info("resumed %s at step %d (epoch %d, batch %d)", self.run_dir, self.position.step,
                    self.position.epoch, self.position.next_batch)
        return True

    # ------------------------------------------------------------------------------------------ loop
    def run(self) -> TrainResult:
        self.setup()
        try:
            self._loop()
        except KeyboardInterrupt:
            logger.warning("interrupted at step %d; saving a resumable checkpoint in %s", self.position.step,
                           self.run_dir / "last")
            self._save_last()
            raise
        finally:
            shutdown(self.process)

        summary = {
            "steps": self.position.step, "best_dev_accuracy": self.best_dev_accuracy,
            "effective_batch_size": self.effective_batch_size, "world_size": self.process.world_size,
            "train_questions": len(self.train_set), "dev_questions": len(self.dev_set),
        }
        if self.process.is_main:
            write_json(self.run_dir / "metrics.json", summary)
        best = self.run_dir / "best"
        return TrainResult(self.run_dir, self.position.step, self.best_dev_accuracy,
                           best if (best / METADATA_FILE).is_file() else None, self.run_dir / "last",
                           self.effective_batch_size)

    def _loop(self) -> None:
        config = self.config.train
        window = _Window()
        self.model.train()
        progress = tqdm(total=self.total_steps, initial=self.position.step, desc="training steps", unit="step",
                        disable=not self.process.is_main, dynamic_ncols=True)

        while self.position.step < self.total_steps and self.position.epoch < config.epochs:
            epoch = self.position.epoch
            order = epoch_order(len(self.train_set), epoch, self.config.runtime.seed, self.process.rank,
                                self.process.world_size)
            batches = [order[start: start + config.batch_size] for start in range(0, len(order), config.batch_size)]

            micro = 0
            batch_index = self.position.next_batch
            while batch_index < len(batches) and self.position.step < self.total_steps:
                batch = self.train_set.batch(batches[batch_index], self.builder, self.config.distill.mode)
                batch = batch.to(self.device)
                micro += 1
                batch_index += 1
                last_micro = micro == config.grad_accum or batch_index == len(batches)
                output = self._forward_backward(batch, micro_batches=config.grad_accum, sync=last_micro)
                window.add(output, batch)
                if not last_micro:
                    continue

                self._optimizer_step()
                micro = 0
                self.position = Position(self.position.step + 1, epoch, batch_index, _rng_state())
                progress.update(1)
                step = self.position.step
                if step % config.log_every == 0:
                    self._log_window(window)
                if config.eval_every and step % config.eval_every == 0:
                    self._evaluate_and_keep_best()
                if step % config.save_every == 0:
                    self._save_last()

            # Stopping at max_steps mid-epoch keeps the position, so that a longer run resumes there.
            if batch_index >= len(batches):
                self.position = Position(self.position.step, epoch + 1, 0, _rng_state())
            if window.questions:
                self._log_window(window)
            self._evaluate_and_keep_best()
            self._save_last()
        progress.close()

    def _forward_backward(self, batch, micro_batches: int, sync: bool):
        context = self.model.no_sync() if (self.process.distributed and not sync) else _nullcontext()
        with context:
            output = self.model(batch)
            (output.loss / micro_batches).backward()
        return output

    def _optimizer_step(self) -> None:
        if self.config.train.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(
                [p for p in self.reasoner.parameters() if p.requires_grad], self.config.train.max_grad_norm
            )
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)

    def _log_window(self, window: "_Window") -> None:
        values = all_reduce_mean(window.means(), self.process)
        questions_per_s = window.questions * self.process.world_size / max(window.elapsed(), 1e-9)
        loss, answer_loss, distill_loss, train_accuracy, latent_norm, cos_questions, cos_slots = values.tolist()
        if self.process.is_main:
            self.log.append(
                step=self.position.step, epoch=self.position.epoch, questions_seen=self.position.step * self.effective_batch_size,
                loss=loss, answer_loss=answer_loss, distill_loss=distill_loss, train_accuracy=train_accuracy,
                latent_norm=latent_norm, token_embedding_norm=self.reasoner.token_embedding_norm,
                latent_cos_questions=cos_questions, latent_cos_slots=cos_slots, lr=self.scheduler.get_last_lr()[0], questions_per_s=questions_per_s, elapsed_s=window.total_elapsed(),
            )
            logger.info("step %d/%d loss %.4f (answer %.4f, distill %.4f) train acc %.3f latent norm %.3f "
                        "(tokens %.3f) latent cosine across questions %.4f, across slots %.4f; %.2f questions/s",
                        self.position.step, self.total_steps, loss, answer_loss, distill_loss, train_accuracy,
                        latent_norm, self.reasoner.token_embedding_norm, cos_questions, cos_slots, questions_per_s)
        window.reset()

    # -------------------------------------------------------------------------------------- evaluate
    def evaluate(self) -> DevResult | None:
        """Compute dev accuracy and latent diversity of the current weights on rank 0 and broadcast them to all ranks."""
        result = None
        if self.process.is_main and len(self.dev_set):
            predictor = Predictor(self.reasoner, self.config, self.graph_source, device=self.device)
            predictions = predictor.predict(self.dev_set.examples, self.dev_set.graphs, progress=True)
            diversity = prediction_diversity(predictions)
            result = DevResult(accuracy(predictions, self.dev_set.examples), diversity.across_questions,
                               diversity.across_slots)
        self.model.train()
        return broadcast_object(result, self.process)

    def _evaluate_and_keep_best(self) -> None:
        # The end of an epoch can fall on a step that eval_every has just evaluated.
        if self.last_evaluated_step == self.position.step:
            return
        self.last_evaluated_step = self.position.step
        started = time.perf_counter()
        result = self.evaluate()
        if result is None:
            return
        dev_accuracy = result.accuracy
        improved = self.best_dev_accuracy is None or dev_accuracy > self.best_dev_accuracy
        if improved:
            self.best_dev_accuracy = dev_accuracy
        if self.process.is_main:
            logger.info("step %d: dev accuracy %.4f (best %.4f), latent cosine across questions %.4f, across slots "
                        "%.4f, in %.1f s", self.position.step, dev_accuracy, self.best_dev_accuracy,
                        result.latent_cos_questions, result.latent_cos_slots, time.perf_counter() - started)
            self.log.append(step=self.position.step, epoch=self.position.epoch, dev_accuracy=dev_accuracy,
                            dev_latent_cos_questions=result.latent_cos_questions,
                            dev_latent_cos_slots=result.latent_cos_slots,
                            questions_seen=self.position.step * self.effective_batch_size)
            if improved:
                self._save_checkpoint(self.run_dir / "best", result)
        barrier(self.process)

    # ------------------------------------------------------------------------------------------ save
    def _save_checkpoint(self, folder: Path, dev: DevResult | None = None) -> None:
        save_checkpoint(
            folder, self.reasoner, self.config, self.graph_source.schema_hash, self.graph_source.num_relations,
            self.graph_source.node_feature_dim,
            extra={"step": self.position.step, "epoch": self.position.epoch,
                   "dev_accuracy": dev.accuracy if dev else None,
                   "dev_latent_cos_questions": nan_to_none(dev.latent_cos_questions) if dev else None,
                   "dev_latent_cos_slots": nan_to_none(dev.latent_cos_slots) if dev else None,
                   "best_dev_accuracy": self.best_dev_accuracy, "effective_batch_size": self.effective_batch_size,
                   "world_size": self.process.world_size, "train_questions": len(self.train_set)},
        )

    def _save_last(self) -> None:
        if not self.process.is_main:
            return
        last = self.run_dir / "last"
        self._save_checkpoint(last)
        state = {
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "position": vars(self.position), "best_dev_accuracy": self.best_dev_accuracy,
        }
        with atomic_write(last / RESUME_FILE, "wb") as stream:
            torch.save(state, stream)


class _Window:
    """Running sums of the loss terms, train accuracy, latent norms and latent diversity between two log rows.

    The diversity of a batch of one question (or, across slots, with K = 1) is NaN and is left out
    of the means, so each value keeps its own count.
    """

    def __init__(self):
        self.started_run = time.perf_counter()
        self.reset()

    def reset(self) -> None:
        self.sums = torch.zeros(7, dtype=torch.float64)
        self.counts = torch.zeros(7, dtype=torch.float64)
        self.batches = 0
        self.questions = 0
        self.started = time.perf_counter()

    def add(self, output, batch) -> None:
        known = batch.labels >= 0
        correct = (output.choice_scores.detach().argmax(-1) == batch.labels)[known].float()
        train_accuracy = float(correct.mean()) if correct.numel() else 0.0
        diversity = latent_diversity(output.latents)
        values = torch.tensor([float(output.loss.detach()), float(output.answer_loss), float(output.distill_loss),
                               train_accuracy, float(output.latent_norms.mean()), diversity.across_questions,
                               diversity.across_slots], dtype=torch.float64)
        defined = ~torch.isnan(values)
        self.sums += torch.where(defined, values, torch.zeros_like(values))
        self.counts += defined.double()
        self.batches += 1
        self.questions += batch.size

    def means(self) -> torch.Tensor:
        """Return the mean of each value over the batches where it is defined, or NaN where it never was."""
        return torch.where(self.counts > 0, self.sums / self.counts.clamp(min=1), torch.full_like(self.sums, float("nan")))

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def total_elapsed(self) -> float:
        return time.perf_counter() - self.started_run


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def train(config: Config, graph_source: GraphSource | None = None, backbone: Backbone | None = None) -> TrainResult:
    """Train the latent reasoner as ``config`` describes; see the module docstring for the outputs."""
    return TrainingRecipe(config, graph_source, backbone).run()
