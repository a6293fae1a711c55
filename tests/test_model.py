"""The latent reasoner on the tiny random decoder: shapes, gradients, norms, scoring, distillation, checkpoints."""

from __future__ import annotations

import json

import pytest
import torch
from torch_geometric.data import Data

from kgreason.config import load_config
from kgreason.data import Choice, Example
from kgreason.model.backbones import TINY_DECODER, load_backbone, token_embedding_norm
from kgreason.model.checkpoint import METADATA_FILE, CheckpointMismatchError, save_checkpoint
from kgreason.model.distill import pool_segments, segment_bounds
from kgreason.model.inputs import InputBuilder
from kgreason.model.predictor import Predictor
from kgreason.model.reasoner import EmptyGraphError, LatentReasoner
from kgreason.model.scoring import score_choices
from kgreason.model.synthetic import SyntheticGraphSource, SyntheticSchema

QUESTIONS = [
    ("Where would you most likely find a jellyfish?", ["ocean", "desert", "library", "mountain top", "oven"], 0,
     "Jellyfish live in salt water, and the ocean is full of salt water."),
    ("What do people use to cut paper at school?", ["scissors", "a hammer", "glue", "a pencil", "tape"], 0,
     "Scissors have two blades that cut paper."),
    ("If you are hungry, what should you do?", ["eat food", "go to sleep", "run a marathon", "read", "sing"], 0,
     "Eating food stops hunger."),
    ("What falls from clouds when it rains?", ["water", "sand", "bricks", "paper", "coins"], 0,
     "Rain is water falling from clouds."),
]


def make_examples() -> list[Example]:
    return [
        Example(id=f"q{index}", question=question, choices=tuple(Choice("ABCDE"[i], text) for i, text in enumerate(choices)),
                answer="ABCDE"[gold], explanation=explanation, dataset="csqa", split="ih-train")
        for index, (question, choices, gold, explanation) in enumerate(QUESTIONS)
    ]


@pytest.fixture(scope="module")
def backbone():
    return load_backbone(TINY_DECODER)


@pytest.fixture(scope="module")
def source():
    return SyntheticGraphSource(num_nodes=10)


def tiny_config(*overrides: str):
    return load_config("configs/tiny.yaml", ["model.dropout=0.0", *overrides])


def make_batch(reasoner, source, examples=None, targets=None, explanations=False):
    examples = examples or make_examples()
    builder = InputBuilder.from_config(reasoner.tokenizer, reasoner.config)
    mask = torch.ones(len(examples), dtype=torch.bool) if (targets is not None or explanations) else None
    return builder.collate(
        [e.question for e in examples], [list(e.choice_texts) for e in examples], source.graphs_for(examples),
        labels=[e.answer_index for e in examples], ids=[e.id for e in examples], targets=targets, target_mask=mask,
        explanations=[e.explanation for e in examples] if explanations else None,
    )


def make_reasoner(backbone, source, *overrides):
    torch.manual_seed(0)
    return LatentReasoner(tiny_config(*overrides), backbone, source.num_relations, source.node_feature_dim)


def test_forward_shapes(backbone, source):
    reasoner = make_reasoner(backbone, source, "model.num_latents=3")
    output = reasoner(make_batch(reasoner, source))

    assert output.choice_scores.shape == (4, 5)
    assert output.latents.shape == (4, 3, backbone.hidden_size)
    assert output.latent_norms.shape == (4, 3)
    assert output.loss.ndim == 0
    assert torch.isfinite(output.choice_scores).all()
    assert torch.isfinite(output.loss)


def test_gradients_reach_latents_not_decoder(backbone, source):
    reasoner = make_reasoner(backbone, source)
    decoder_before = {name: p.detach().clone() for name, p in reasoner.decoder.named_parameters()}
    optimizer = torch.optim.AdamW([p for p in reasoner.parameters() if p.requires_grad], lr=1e-2)
    batch = make_batch(reasoner, source)

    latents = reasoner.compute_latents(batch)
    latents.retain_grad()
    scores = score_choices(reasoner.decoder, batch.prefix_ids, batch.prefix_mask, latents, batch.suffix_ids,
                           batch.choice_ids, batch.choice_mask, batch.choice_valid).scores
    torch.nn.functional.cross_entropy(scores, batch.labels).backward()

    assert latents.grad is not None
    assert latents.grad.abs().sum() > 0
    assert reasoner.graph_encoder.text_projection.weight.grad.abs().sum() > 0
    assert reasoner.graph_encoder.convs[0].weight.grad is not None
    assert reasoner.pooler.queries.grad.abs().sum() > 0
    assert all(p.grad is None for p in reasoner.decoder.parameters())

    optimizer.step()
    for name, parameter in reasoner.decoder.named_parameters():
        assert torch.equal(parameter, decoder_before[name]), name


def test_injected_norm_matches_token_embeddings(backbone, source):
    reasoner = make_reasoner(backbone, source)
    output = reasoner(make_batch(reasoner, source))

    assert output.latent_norms.min() > 0
    torch.testing.assert_close(output.latent_norms, torch.full_like(output.latent_norms, backbone.token_embedding_norm),
                               rtol=1e-3, atol=0)


def test_norm_counts_embedding_scale():
    # Gemma multiplies token embeddings by sqrt(hidden) inside the embedding layer.
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    from kgreason.model.backbones import NORM_PROBE_TEXT

    class Tokenizer:
        def __call__(self, text, return_tensors=None, add_special_tokens=True):
            ids = torch.tensor([[ord(character) % 500 for character in text]])
            return type("Encoding", (), {"input_ids": ids})()

    config = Gemma3TextConfig(vocab_size=500, hidden_size=64, intermediate_size=64, num_hidden_layers=1,
                              num_attention_heads=2, num_key_value_heads=1, head_dim=32)
    model = Gemma3ForCausalLM(config)
    ids = Tokenizer()(NORM_PROBE_TEXT).input_ids
    unscaled = float(model.get_input_embeddings().weight.detach()[ids].norm(dim=-1).mean())

    measured = token_embedding_norm(model, Tokenizer())

    assert measured == pytest.approx(unscaled * 8.0, rel=1e-3)


def test_cached_scores_equal_full_sequence(backbone, source):
    reasoner = make_reasoner(backbone, source)
    batch = make_batch(reasoner, source)
    with torch.no_grad():
        latents = reasoner.compute_latents(batch)
        cached = score_choices(reasoner.decoder, batch.prefix_ids, batch.prefix_mask, latents, batch.suffix_ids,
                               batch.choice_ids, batch.choice_mask, batch.choice_valid).scores

        embedding = reasoner.decoder.get_input_embeddings()
        for row in range(batch.size):
            prefix = batch.prefix_ids[row][batch.prefix_mask[row].bool()]
            for column in range(batch.choice_ids.shape[1]):
                choice = batch.choice_ids[row, column][batch.choice_mask[row, column].bool()]
                inputs = torch.cat([embedding(prefix), latents[row], embedding(batch.suffix_ids), embedding(choice)])
                logprobs = reasoner.decoder(inputs_embeds=inputs.unsqueeze(0)).logits[0].log_softmax(-1)
                start = inputs.shape[0] - len(choice) - 1
                expected = logprobs[start:-1].gather(1, choice.unsqueeze(1)).mean()
                assert float(cached[row, column]) == pytest.approx(float(expected), abs=1e-4)


def test_padding_choices_score_minus_infinity(backbone, source):
    reasoner = make_reasoner(backbone, source)
    examples = make_examples()[:2]
    examples[1] = Example(id="short", question="Pick one.", choices=(Choice("A", "yes"), Choice("B", "no")),
                          answer="A", explanation=None, dataset="csqa", split="ih-train")
    with torch.no_grad():
        output = reasoner(make_batch(reasoner, source, examples))

    assert output.choice_scores.shape == (2, 5)
    assert torch.isinf(output.choice_scores[1, 2:]).all()
    assert torch.isfinite(output.choice_scores[1, :2]).all()


def test_segment_bounds_ordered_and_nonempty():
    assert segment_bounds(10, 4) == [(0, 2), (2, 5), (5, 7), (7, 10)]
    assert segment_bounds(2, 4) == [(0, 1), (0, 1), (1, 2), (1, 2)]
    pooled = pool_segments(torch.eye(4), 2)
    assert pooled.shape == (2, 4)
    torch.testing.assert_close(pooled.norm(dim=-1), torch.ones(2))
    assert pooled[0, 2] == 0
    assert pooled[1, 0] == 0


def distillation_losses(reasoner, batch, steps: int) -> list[float]:
    """Train ``reasoner`` on one fixed batch with Adam and return the distillation loss of each step."""
    optimizer = torch.optim.Adam([p for p in reasoner.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(steps):
        output = reasoner(batch)
        losses.append(float(output.distill_loss))
        optimizer.zero_grad()
        output.loss.backward()
        optimizer.step()
    return losses


def test_distillation_loss_falls(backbone, source):
    from kgreason.model.distill import segment_targets

    examples = make_examples()
    targets = torch.from_numpy(segment_targets([e.explanation for e in examples], 2, "all-MiniLM-L6-v2"))
    reasoner = make_reasoner(backbone, source, "distill.weight=1.0")
    batch = make_batch(reasoner, source, targets=targets)
    losses = distillation_losses(reasoner, batch, steps=25)

    assert targets.shape == (4, 2, 384)
    assert losses[-1] < 0.5 * losses[0]


def test_contrastive_and_nmse_losses_finite(backbone, source):
    targets = torch.nn.functional.normalize(torch.randn(4, 2, 384), dim=-1)
    reasoner = make_reasoner(backbone, source, "distill.loss=nmse", "distill.contrastive=true")
    output = reasoner(make_batch(reasoner, source, targets=targets))
    output.loss.backward()

    assert torch.isfinite(output.distill_loss)
    assert float(output.distill_loss) > 0


def test_codi_distillation_trains_student(backbone, source):
    reasoner = make_reasoner(backbone, source, "distill.mode=codi")
    batch = make_batch(reasoner, source, explanations=True)
    losses = distillation_losses(reasoner, batch, steps=15)

    assert reasoner.readout is None
    assert losses[0] > 0
    assert losses[-1] < losses[0]


def test_lora_trains_adapters_only(backbone, source):
    fresh = load_backbone(TINY_DECODER)
    reasoner = make_reasoner(fresh, source, "model.lora=true", "model.lora_rank=2")
    output = reasoner(make_batch(reasoner, source))
    output.loss.backward()

    lora = [name for name, p in reasoner.named_parameters() if p.requires_grad and "lora_" in name]
    assert lora
    assert all(p.grad is not None for name, p in reasoner.named_parameters() if name in lora)
    assert all(name in reasoner.trainable_state_dict() for name in lora)
    base = [p for name, p in reasoner.decoder.named_parameters() if "lora_" not in name]
    assert all(not p.requires_grad for p in base)


def test_empty_graph_names_question(backbone, source):
    reasoner = make_reasoner(backbone, source)
    examples = make_examples()[:2]
    builder = InputBuilder(reasoner.tokenizer)
    empty = Data(x=torch.zeros(0, 384), node_type=torch.zeros(0, dtype=torch.long),
                 node_choice=torch.zeros(0, dtype=torch.long), relevance=torch.zeros(0),
                 edge_index=torch.zeros(2, 0, dtype=torch.long), edge_type=torch.zeros(0, dtype=torch.long),
                 node_id=torch.zeros(0, dtype=torch.long), num_nodes=0, question_concepts=[], choice_concepts=[])
    batch = builder.collate([e.question for e in examples], [list(e.choice_texts) for e in examples],
                            [source.graphs_for(examples)[0], empty], ids=["q0", "q1"])

    with pytest.raises(EmptyGraphError, match="q1"):
        reasoner(batch)


def test_generate_writes_text(backbone, source):
    reasoner = make_reasoner(backbone, source)
    batch = make_batch(reasoner, source, make_examples()[:1])
    answers = reasoner.generate(batch, max_new_tokens=5)

    assert len(answers) == 1
    assert isinstance(answers[0], str)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, backbone, source):
    folder = tmp_path_factory.mktemp("checkpoint")
    reasoner = make_reasoner(backbone, source)
    optimizer = torch.optim.AdamW([p for p in reasoner.parameters() if p.requires_grad], lr=1e-2)
    reasoner(make_batch(reasoner, source)).loss.backward()
    optimizer.step()
    save_checkpoint(folder, reasoner, reasoner.config, source.schema_hash, source.num_relations, source.node_feature_dim)
    reasoner.eval()
    with torch.no_grad():
        scores = reasoner(make_batch(reasoner, source)).choice_scores
    return folder, scores


def test_save_load_same_scores(checkpoint, backbone, source):
    folder, scores = checkpoint
    predictor = Predictor.from_checkpoint(folder, graph_source=source, backbone=backbone)
    predictions = predictor.predict(make_examples(), batch_size=3)

    loaded = torch.tensor([p.choice_scores for p in predictions])
    torch.testing.assert_close(loaded, scores, rtol=0, atol=1e-5)
    assert [p.id for p in predictions] == ["q0", "q1", "q2", "q3"]
    assert all(abs(sum(p.probabilities) - 1) < 1e-5 for p in predictions)
    assert predictions[0].latents.shape == (2, backbone.hidden_size)
    assert predictions[0].num_nodes == 10
    assert predictions[0].readout.shape == (2, 384)
    torch.testing.assert_close(predictions[0].readout.norm(dim=-1), torch.ones(2))
    assert predictor.predict([]) == []


def test_checkpoint_other_backbone_rejected(checkpoint, backbone, source, tmp_path):
    folder, _ = checkpoint
    metadata = json.loads((folder / METADATA_FILE).read_text())
    metadata["backbone_id"] = "smollm2-135m-instruct@0123456789abcdef"
    other = tmp_path / "other"
    other.mkdir()
    (other / METADATA_FILE).write_text(json.dumps(metadata))
    (other / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes())

    with pytest.raises(CheckpointMismatchError) as error:
        Predictor.from_checkpoint(other, graph_source=source, backbone=backbone)
    assert "smollm2-135m-instruct@0123456789abcdef" in str(error.value)
    assert TINY_DECODER in str(error.value)


def test_checkpoint_other_schema_rejected(checkpoint, backbone):
    folder, _ = checkpoint
    other_schema = SyntheticGraphSource(schema=SyntheticSchema(num_relations=42, name="other"))

    with pytest.raises(CheckpointMismatchError) as error:
        Predictor.from_checkpoint(folder, graph_source=other_schema, backbone=backbone)
    assert "40 relations" in str(error.value)
    assert "42 relations" in str(error.value)


def test_checkpoint_other_k_rejected(checkpoint, backbone, source):
    folder, _ = checkpoint

    with pytest.raises(CheckpointMismatchError) as error:
        Predictor.from_checkpoint(folder, ["model.num_latents=3"], graph_source=source, backbone=backbone)
    assert "model.num_latents=2" in str(error.value)
    assert "model.num_latents=3" in str(error.value)


def test_missing_checkpoint_names_folder(tmp_path, backbone, source):
    from kgreason.model.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="nowhere"):
        Predictor.from_checkpoint(tmp_path / "nowhere", graph_source=source, backbone=backbone)


def test_eager_attention_scores_match_sdpa(backbone, source):
    reasoner = make_reasoner(backbone, source)
    batch = make_batch(reasoner, source)
    with torch.no_grad():
        sdpa = reasoner(batch).choice_scores
        reasoner.decoder.config._attn_implementation = "eager"
        try:
            eager = reasoner(batch).choice_scores
        finally:
            reasoner.decoder.config._attn_implementation = "sdpa"

    torch.testing.assert_close(eager, sdpa, rtol=0, atol=1e-4)


def test_prefix_lists_choices_only_when_asked(backbone):
    hidden = InputBuilder(backbone.tokenizer, show_choices=False)
    shown = InputBuilder(backbone.tokenizer, show_choices=True)
    question, choices = QUESTIONS[0][0], QUESTIONS[0][1]

    hidden_text = backbone.tokenizer.decode(hidden.prefix_ids(question, choices))
    shown_text = backbone.tokenizer.decode(shown.prefix_ids(question, choices))

    assert "mountain top" not in hidden_text
    assert "Choices: ocean; desert; library; mountain top; oven" in shown_text
    assert hidden_text.endswith("\nHint:")
    assert shown_text.startswith("Question: Where would you most likely find a jellyfish?")


def test_long_question_truncated(backbone):
    builder = InputBuilder(backbone.tokenizer, max_question_tokens=32)
    ids = builder.prefix_ids("why " * 5000, ["yes", "no"])

    assert len(ids) <= 32 + len(builder.open_ids)


def test_score_one_question_matches_predict(checkpoint, backbone, source):
    folder, scores = checkpoint
    predictor = Predictor.from_checkpoint(folder, graph_source=source, backbone=backbone)
    question, choices = QUESTIONS[1][0], QUESTIONS[1][1]

    prediction = predictor.score(question, choices)

    torch.testing.assert_close(torch.tensor(prediction.choice_scores), scores[1], rtol=0, atol=1e-5)
    assert prediction.choices == choices
    assert prediction.predicted_text in choices
    with pytest.raises(ValueError, match="empty"):
        predictor.score("   ", choices)
    with pytest.raises(ValueError, match="no choices"):
        predictor.score(question, [])
