"""The embedding cache and the sharded question-graph cache, including resuming an interrupted run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kgreason.config import load_config
from kgreason.data import load_examples
from kgreason.graph import embeddings
from kgreason.graph.cache import (
    QuestionGraphCache,
    cache_folder,
    ground_examples,
    load_question_graphs,
    question_key,
)
from kgreason.graph.embeddings import EmbeddingCache
from kgreason.graph.retrieval import RetrievalSettings, SubgraphRetriever


def refuse_encoding(texts):
    raise AssertionError(f"the cache should have held {list(texts)[:3]}")


def test_embedding_cache_persists(tmp_path):
    cache = EmbeddingCache(tmp_path)
    vectors = cache.embed(["jellyfish", "ocean", "jellyfish"])
    assert vectors.shape == (3, 384)
    assert np.allclose(vectors[0], vectors[2])
    assert cache.encoded == 2
    assert cache.flush() == 2
    assert cache.flush() == 0

    reopened = EmbeddingCache(tmp_path)
    reopened.encode = refuse_encoding
    assert np.array_equal(reopened.embed(["ocean", "jellyfish"]), vectors[[1, 0]])
    assert len(reopened) == 2


def test_embedding_cache_keys_by_encoder(tmp_path):
    first = EmbeddingCache(tmp_path, encoder_name="all-MiniLM-L6-v2", max_seq_length=128)
    other = EmbeddingCache(tmp_path, encoder_name="all-MiniLM-L6-v2", max_seq_length=64)
    assert first.folder != other.folder
    assert first.folder.name.startswith("all-MiniLM-L6-v2-")


def test_embedding_cache_merges_many_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(embeddings, "MAX_CHUNKS", 3)
    cache = EmbeddingCache(tmp_path)
    for text in ["a cat", "a dog", "a cow", "a hen", "a pig"]:
        cache.embed([text])
        cache.flush()
    assert len(list(cache.folder.glob("chunk-*.npy"))) == 5
    expected = cache.embed(["a dog", "a pig"])

    merged = EmbeddingCache(tmp_path)
    assert len(list(merged.folder.glob("chunk-*.npy"))) == 1
    merged.encode = refuse_encoding
    assert np.array_equal(merged.embed(["a dog", "a pig"]), expected)


def test_embedding_cache_ignores_bad_chunk(tmp_path, caplog):
    cache = EmbeddingCache(tmp_path)
    cache.embed(["a cat"])
    cache.flush()
    (cache.folder / "chunk-99999999999999999999-1.npy").write_bytes(b"not an array")

    reopened = EmbeddingCache(tmp_path)
    assert len(reopened) == 1
    assert "ignoring unreadable embedding chunk" in caplog.text


@pytest.fixture(scope="module")
def examples():
    return load_examples("csqa", "dev", max_examples=7)


@pytest.fixture()
def retriever(small_graph_overrides):
    config = load_config(overrides=small_graph_overrides)
    return SubgraphRetriever.from_config(config)


def assert_same_graph(first, second, atol=1e-8):
    for name in ("node_id", "node_type", "node_choice", "edge_index", "edge_type"):
        assert torch.equal(getattr(first, name), getattr(second, name)), name
    assert torch.allclose(first.relevance, second.relevance)
    assert torch.allclose(first.x, second.x, atol=atol), float((first.x - second.x).abs().max())
    assert first.question_concepts == second.question_concepts
    assert first.choice_concepts == second.choice_concepts


def test_load_question_graphs_matches_retrieve(small_graph_overrides, tmp_path, examples):
    config = load_config(overrides=[*small_graph_overrides, f"data.cache_dir={tmp_path}"])
    graphs = load_question_graphs(config, examples, progress=False)
    assert len(graphs) == len(examples)

    retriever = SubgraphRetriever.from_config(config)
    for example, graph in zip(examples, graphs):
        assert_same_graph(graph, retriever.retrieve(example.question, example.choice_texts))

    # A second call reads everything from the cache.
    retriever.retrieve_many = lambda items: pytest.fail("the question graphs should come from the cache")
    again = load_question_graphs(config, examples[::-1], progress=False, retriever=retriever)
    for graph, expected in zip(again, graphs[::-1]):
        assert_same_graph(graph, expected)
    assert load_question_graphs(config, [], progress=False) == []


def test_ground_resumes_after_interrupt(retriever, tmp_path, examples):
    def interrupt(path):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ground_examples(retriever, examples, tmp_path, shard_size=3, progress=False, on_shard=interrupt)
    folder = cache_folder(retriever, tmp_path)
    assert len(list(folder.glob("shard-*.safetensors"))) == 1
    assert not list(folder.glob(".*.tmp"))

    retrieved = []
    original = retriever.retrieve_many

    def counting(items):
        retrieved.extend(question for question, _ in items)
        return original(items)

    retriever.retrieve_many = counting
    report = ground_examples(retriever, examples, tmp_path, shard_size=3, progress=False)
    assert (report.shards_total, report.shards_reused, report.shards_written) == (3, 1, 2)
    assert retrieved == [example.question for example in examples[3:]]

    rerun = ground_examples(retriever, examples, tmp_path, shard_size=3, progress=False)
    assert (rerun.shards_reused, rerun.shards_written) == (3, 0)

    # The resumed cache holds exactly what an uninterrupted run computes.
    keys = [question_key(example.question, example.choice_texts) for example in examples]
    resumed = QuestionGraphCache(folder).load(keys, retriever)
    fresh_report = ground_examples(retriever, examples, tmp_path / "fresh", shard_size=7, progress=False)
    fresh = fresh_report.cache.load(keys, retriever)
    for first, second in zip(resumed, fresh):
        assert_same_graph(first, second)


def test_unreadable_shard_is_recomputed(retriever, tmp_path, examples, caplog):
    report = ground_examples(retriever, examples[:2], tmp_path, shard_size=2, progress=False)
    (shard,) = report.cache.folder.glob("shard-*.safetensors")
    shard.write_bytes(b"\0" * 16)

    again = ground_examples(retriever, examples[:2], tmp_path, shard_size=2, progress=False)
    assert again.shards_written == 1
    assert "ignoring unreadable question-graph shard" in caplog.text


def test_cache_folder_depends_on_settings(retriever, tmp_path):
    other = SubgraphRetriever(retriever.store, retriever.cache,
                              RetrievalSettings(**{**retriever.settings.to_dict(), "max_nodes": 7}))
    assert cache_folder(retriever, tmp_path) != cache_folder(other, tmp_path)
    assert cache_folder(retriever, tmp_path) == cache_folder(
        SubgraphRetriever(retriever.store, retriever.cache, retriever.settings), tmp_path)


def test_features_rebuilt_after_embedding_cache_cleared(small_graph_overrides, tmp_path, examples):
    import shutil

    config = load_config(overrides=[*small_graph_overrides, f"data.cache_dir={tmp_path}"])
    before = load_question_graphs(config, examples[:2], progress=False)
    shutil.rmtree(tmp_path / "embeddings")

    retriever = SubgraphRetriever.from_config(config)
    after = load_question_graphs(config, examples[:2], progress=False, retriever=retriever)
    assert retriever.cache.encoded > 0
    # Texts encoded again, in other batches, differ by float rounding only (about 1e-7 here).
    for first, second in zip(before, after):
        assert_same_graph(first, second, atol=1e-5)
    assert list((tmp_path / "embeddings").glob("*/chunk-*.npy"))
