"""The latent reasoner: graph encoder -> K latent vectors -> decoder LM that scores or writes the answer.

Trainable: the graph encoder, the latent pooler (with its projector), the distillation readout
head and, with ``model.lora=true``, LoRA adapters in the decoder. The decoder itself stays frozen.

Loss = answer loss + lambda * distillation loss, where the answer loss is the cross-entropy over
the C choice scores (the length-normalised log-likelihoods, so training optimises the same rule
that predicts) plus ``train.answer_nll_weight`` times the gold choice's mean token NLL.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from kgreason.config import Config
from kgreason.model.backbones import Backbone
from kgreason.model.distill import ReadoutHead, codi_loss, segments_loss
from kgreason.model.gnn import GraphEncoder
from kgreason.model.inputs import ReasonerBatch
from kgreason.model.latents import LatentPooler
from kgreason.model.scoring import score_choices, teacher_hidden_states

logger = logging.getLogger(__name__)


class EmptyGraphError(ValueError):
    """A question graph without nodes: every retrieved graph has at least the context node."""


@dataclass
class ReasonerOutput:
    """Output of ``LatentReasoner.forward``."""

    loss: torch.Tensor
    """Scalar: answer_loss + distill.weight * distill_loss."""

    answer_loss: torch.Tensor
    distill_loss: torch.Tensor
    choice_scores: torch.Tensor
    """[B, C] length-normalised log-likelihood of each choice; -inf for padding choices."""

    latents: torch.Tensor
    """[B, K, H] the vectors inserted into the decoder input."""

    latent_norms: torch.Tensor
    """[B, K] L2 norm of each latent vector."""


class LatentReasoner(nn.Module):
    """Score the choices of a ReasonerBatch, or write a free-form answer, through K graph latents."""

    def __init__(self, config: Config, backbone: Backbone, num_relations: int, node_feature_dim: int):
        super().__init__()
        model = config.model
        self.config = config
        self.backbone_id = backbone.backbone_id
        self.tokenizer = backbone.tokenizer
        self.num_latents = model.num_latents
        self.token_embedding_norm = backbone.token_embedding_norm

        self.graph_encoder = GraphEncoder(
            node_feature_dim, model.gnn_hidden, num_relations, model.gnn_layers, model.num_bases, model.dropout
        )
        target_norm = backbone.token_embedding_norm if model.latent_norm == "match" else None
        self.pooler = LatentPooler(
            model.gnn_hidden, backbone.hidden_size, model.num_latents, model.gnn_heads, target_norm, model.dropout
        )
        self.readout = ReadoutHead(backbone.hidden_size, node_feature_dim) if config.distill.mode == "segments" else None

        self.decoder = backbone.model
        if model.lora:
            self.decoder = _add_lora(self.decoder, model)

    @property
    def prefix_needs_grad(self) -> bool:
        """Prefix keys and values depend on trainable weights only when LoRA adapts the decoder."""
        return self.config.model.lora and self.training

    def train(self, mode: bool = True) -> "LatentReasoner":
        super().train(mode)
        # The frozen decoder never uses dropout; with LoRA the adapters follow the reasoner's mode.
        if not self.config.model.lora:
            self.decoder.eval()
        return self

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Trainable weights and the latent norm buffer: everything a checkpoint needs besides the backbone."""
        trainable = {name for name, parameter in self.named_parameters() if parameter.requires_grad}
        state = {}
        for name, tensor in self.state_dict().items():
            if name in trainable or not name.startswith("decoder."):
                state[name] = tensor.detach().cpu().contiguous()
        return state

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load weights written by ``trainable_state_dict``; a missing or unexpected key raises ValueError."""
        expected = set(self.trainable_state_dict())
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unexpected:
            raise ValueError(f"checkpoint weights do not fit this model: missing {missing[:5]}, unexpected {unexpected[:5]}")
        self.load_state_dict(state, strict=False)

    def compute_latents(self, batch: ReasonerBatch) -> torch.Tensor:
        """Latent vectors ``[B, K, H]`` from the batch's question graphs."""
        graphs = batch.graphs
        counts = graphs.ptr[1:] - graphs.ptr[:-1]
        if bool((counts == 0).any()):
            empty = int(torch.nonzero(counts == 0)[0])
            name = batch.ids[empty] if empty < len(batch.ids) else f"#{empty}"
            raise EmptyGraphError(
                f"question graph {name} has no nodes; every retrieved graph must contain at least the context "
                "node 0 (rebuild the question graphs with python -m kgreason.graph ground)"
            )

        node_states = self.graph_encoder(
            graphs.x.float(), graphs.node_type, graphs.relevance.float(), graphs.edge_index, graphs.edge_type
        )
        latents = self.pooler(node_states, graphs.batch, graphs.ptr[:-1])
        return latents.to(self.decoder.get_input_embeddings().weight.dtype)

    def forward(self, batch: ReasonerBatch) -> ReasonerOutput:
        latents = self.compute_latents(batch)
        want_hidden = self.config.distill.mode == "codi" and batch.teacher_ids is not None
        scored = score_choices(
            self.decoder, batch.prefix_ids, batch.prefix_mask, latents, batch.suffix_ids, batch.choice_ids,
            batch.choice_mask, batch.choice_valid, prefix_grad=self.prefix_needs_grad,
            output_hidden_states=want_hidden,
        )
        scores = scored.scores
        answer_loss = self._answer_loss(scores, batch.labels)
        distill_loss = self._distill_loss(batch, latents, scored.answer_hidden)
        loss = answer_loss + self.config.distill.weight * distill_loss
        return ReasonerOutput(
            loss=loss, answer_loss=answer_loss.detach(), distill_loss=distill_loss.detach(), choice_scores=scores,
            latents=latents, latent_norms=latents.detach().float().norm(dim=-1),
        )

    def _answer_loss(self, scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        known = labels >= 0
        if scores.shape[1] == 0 or not bool(known.any()):
            return scores.new_zeros(()) if scores.numel() else torch.zeros((), device=labels.device)
        loss = F.cross_entropy(scores[known], labels[known])
        weight = self.config.train.answer_nll_weight
        if weight:
            gold = scores[known].gather(1, labels[known].unsqueeze(1))
            loss = loss - weight * gold.mean()
        return loss

    def _distill_loss(self, batch: ReasonerBatch, latents: torch.Tensor,
                      answer_hidden: torch.Tensor | None) -> torch.Tensor:
        distill = self.config.distill
        zero = latents.sum() * 0.0
        if distill.mode == "segments" and batch.targets is not None and self.readout is not None:
            readout = self.readout(latents.float())
            return segments_loss(readout, batch.targets, batch.target_mask, distill.loss, distill.contrastive,
                                 distill.temperature)
        if distill.mode == "codi" and answer_hidden is not None and batch.teacher_ids is not None:
            teacher = teacher_hidden_states(self.decoder, batch.teacher_ids, batch.teacher_mask)
            return codi_loss(answer_hidden.float(), teacher.float(), batch.target_mask, distill.loss)
        return zero

    @torch.no_grad()
    def generate(self, batch: ReasonerBatch, max_new_tokens: int | None = None) -> list[str]:
        """Write a free-form answer for each question of ``batch`` (choices, if any, are only read)."""
        latents = self.compute_latents(batch)
        embedding = self.decoder.get_input_embeddings()
        suffix = embedding(batch.suffix_ids)
        newline = self.tokenizer("\n", add_special_tokens=False).input_ids[-1:]
        stop = [self.tokenizer.eos_token_id, *newline]

        answers = []
        for row in range(batch.size):
            prefix_ids = batch.prefix_ids[row][batch.prefix_mask[row].bool()]
            inputs = torch.cat([embedding(prefix_ids), latents[row], suffix]).unsqueeze(0)
            # min_new_tokens=1: SmolLM2-Instruct otherwise often ends at once (end-of-turn) on untrained latents.
            output = self.decoder.generate(
                inputs_embeds=inputs, attention_mask=torch.ones(inputs.shape[:2], dtype=torch.long, device=inputs.device),
                max_new_tokens=max_new_tokens or self.config.model.max_new_tokens, min_new_tokens=1, do_sample=False,
                eos_token_id=stop, pad_token_id=self.tokenizer.pad_token_id,
            )
            text = self.tokenizer.decode(output[0], skip_special_tokens=True)
            answers.append(text.strip().split("\n")[0].strip())
        return answers


def _add_lora(decoder: nn.Module, model_config) -> nn.Module:
    from peft import LoraConfig, get_peft_model

    adapters = LoraConfig(
        r=model_config.lora_rank, lora_alpha=model_config.lora_alpha, target_modules=list(model_config.lora_targets),
        lora_dropout=0.0, bias="none",
    )
    try:
        wrapped = get_peft_model(decoder, adapters)
    except ValueError as error:
        raise ValueError(f"model.lora_targets={model_config.lora_targets} do not match decoder modules: {error}") from None
    trainable = sum(parameter.numel() for parameter in wrapped.parameters() if parameter.requires_grad)
    logger.info("LoRA rank %d on %s: %d trainable decoder weights", model_config.lora_rank,
                model_config.lora_targets, trainable)
    return wrapped
