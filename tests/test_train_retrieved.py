"""Training and prediction on real retrieved subgraphs (slow: builds the graph store from the mirror)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kgreason.config import load_config
from kgreason.data import load_examples
from kgreason.model.backbones import TINY_DECODER, load_backbone
from kgreason.model.graphs import RetrievedGraphSource
from kgreason.model.predictor import Predictor
from kgreason.training import train

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def test_tiny_training_on_retrieved_graphs(tmp_path):
    config = load_config(ROOT / "configs/tiny.yaml", [
        "model.graph_input=retrieved", f"graph.dir={tmp_path / 'graphs'}", f"train.out_dir={tmp_path / 'run'}",
        "data.max_examples=8",
    ])
    source = RetrievedGraphSource(config)
    result = train(config, graph_source=source, backbone=load_backbone(TINY_DECODER))

    assert result.steps == 2
    assert source.num_relations > 2
    assert (tmp_path / "graphs" / "default").is_dir()

    predictor = Predictor.from_checkpoint(result.best_checkpoint, graph_source=source)
    examples = load_examples("csqa", "ih-dev", max_examples=2)
    predictions = predictor.predict(examples)
    assert [p.id for p in predictions] == [e.id for e in examples]
    assert all(p.num_nodes > 1 for p in predictions)
    assert all(p.question_concepts for p in predictions)
    answer = predictor.generate(examples[0].question, max_new_tokens=4)
    assert isinstance(answer, str)
