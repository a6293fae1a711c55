"""Retrieval on a hand-made graph whose 2-hop paths are known, with the real sentence encoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kgreason.config import load_config
from kgreason.graph.build import build_graph
from kgreason.graph.embeddings import EmbeddingCache
from kgreason.graph.normalize import normalize
from kgreason.graph.retrieval import RetrievalSettings, SubgraphRetriever
from kgreason.graph.schema import DEFAULT_SCHEMA
from kgreason.graph.sources import GraphSource
from kgreason.graph.store import GraphStore, GraphStoreError

TOY_GRAPH = (
    "AtLocation\tjellyfish\tsea\n"
    "AtLocation\tsea\tocean\n"
    "AtLocation\tjellyfish\tbeach\n"
    "AtLocation\tbeach\tocean\n"
    "IsA\tjellyfish\tanimal\n"
    "IsA\tcamel\tanimal\n"
    "AtLocation\tcamel\tdesert\n"
    "CapableOf\tperson\tfind\n"
    "IsA\tdog\tanimal\n"
)
TOY_EVENTS = "PersonX swims in the ocean @@ xIntent\tto cool off\n"

QUESTION = "Where would you find a jellyfish?"
CHOICES = ["ocean", "desert", "xyzzy"]


@pytest.fixture(scope="module")
def toy_store(tmp_path_factory) -> GraphStore:
    folder = tmp_path_factory.mktemp("toy-graph")
    (folder / "toy.txt").write_text(TOY_GRAPH, encoding="utf-8")
    (folder / "events.tsv").write_text(TOY_EVENTS, encoding="utf-8")
    build_graph([GraphSource("cn100k", folder / "toy.txt"), GraphSource("atomic2020", folder / "events.tsv")],
                folder / "toy", progress=False)
    return GraphStore.open(folder / "toy")


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    return tmp_path_factory.mktemp("embeddings")


def make_retriever(store, cache_root, **settings) -> SubgraphRetriever:
    defaults = {"dense_scope": "none"}
    return SubgraphRetriever(store, EmbeddingCache(cache_root), RetrievalSettings(**{**defaults, **settings}))


def node_texts(graph, store) -> list[str]:
    return ["<context>" if int(node) < 0 else store.concept_text(int(node)) for node in graph.node_id]


def named_edges(graph, store) -> set[tuple[str, str, str]]:
    texts = node_texts(graph, store)
    return {(texts[int(u)], DEFAULT_SCHEMA.relation_names[int(r)], texts[int(v)])
            for (u, v), r in zip(graph.edge_index.t().tolist(), graph.edge_type.tolist())}


def test_pair_has_two_hop_intermediates(toy_store, cache_root):
    graph = make_retriever(toy_store, cache_root).retrieve_pair(QUESTION, "ocean")

    texts = node_texts(graph, toy_store)
    assert texts[:4] == ["<context>", "find", "jellyfish", "ocean"]
    assert sorted(texts[4:]) == ["beach", "sea"]
    assert graph.node_type.tolist() == [0, 1, 1, 2, 3, 3]
    assert graph.node_choice.tolist() == [-1, -1, -1, 0, -1, -1]
    assert graph.question_concepts == ["find", "jellyfish"]
    assert graph.choice_concepts == [["ocean"]]

    edges = named_edges(graph, toy_store)
    assert ("jellyfish", "atlocation", "sea") in edges
    assert ("sea", "atlocation_reverse", "jellyfish") in edges
    assert ("sea", "atlocation", "ocean") in edges
    assert ("beach", "atlocation", "ocean") in edges
    context_edges = {edge for edge in edges if "<context>" in (edge[0], edge[2])}
    assert context_edges == {
        ("<context>", "context", "find"), ("find", "context_reverse", "<context>"),
        ("<context>", "context", "jellyfish"), ("jellyfish", "context_reverse", "<context>"),
        ("<context>", "context", "ocean"), ("ocean", "context_reverse", "<context>"),
    }
    assert len(edges) == graph.edge_index.shape[1]


def test_question_graph_fields(toy_store, cache_root):
    retriever = make_retriever(toy_store, cache_root)
    graph = retriever.retrieve(QUESTION, CHOICES)

    n = graph.num_nodes
    assert graph.x.dtype == torch.float32
    assert graph.x.shape == (n, 384)
    assert torch.allclose(graph.x.norm(dim=1), torch.ones(n), atol=1e-4)
    assert graph.node_type.dtype == torch.long
    assert graph.node_type.shape == (n,)
    assert graph.node_choice.dtype == torch.long
    assert graph.node_choice.shape == (n,)
    assert graph.relevance.dtype == torch.float32
    assert graph.relevance.shape == (n,)
    assert graph.relevance[0] == 1.0
    assert graph.edge_index.dtype == torch.long
    assert graph.edge_index.shape[0] == 2
    assert graph.edge_type.dtype == torch.long
    assert graph.edge_type.shape == (graph.edge_index.shape[1],)
    assert int(graph.edge_type.max()) < DEFAULT_SCHEMA.num_relations
    assert int(graph.edge_index.max()) < n
    assert graph.node_id.dtype == torch.long
    assert graph.node_id[0] == -1
    assert graph.node_type[0] == 0

    # The context node carries the question embedding.
    expected = retriever.cache.embed([QUESTION])[0]
    assert np.allclose(graph.x[0].numpy(), expected, atol=1e-6)

    # Every edge appears in both directions, with the reverse relation.
    forward = {(u, v, r) for (u, v), r in zip(graph.edge_index.t().tolist(), graph.edge_type.tolist())}
    for u, v, r in forward:
        assert (v, u, DEFAULT_SCHEMA.reverse(r)) in forward

    # "desert" is 3 hops from jellyfish: the desert subgraph adds its concept and no intermediate.
    texts = node_texts(graph, toy_store)
    assert "desert" in texts
    assert "animal" not in texts
    assert "camel" not in texts
    assert graph.node_choice[texts.index("desert")] == 1
    assert graph.choice_concepts == [["ocean"], ["desert"], []]


def test_relevance_is_max_cosine_over_choices(toy_store, cache_root):
    retriever = make_retriever(toy_store, cache_root)
    graph = retriever.retrieve(QUESTION, CHOICES)

    queries = retriever.cache.embed([f"{QUESTION} {choice}" for choice in CHOICES])
    texts = node_texts(graph, toy_store)[1:]
    nodes = retriever.cache.embed(texts)
    expected = (nodes @ queries.T).max(axis=1)
    assert np.allclose(graph.relevance[1:].numpy(), expected, atol=1e-5)
    assert np.allclose(graph.x[1:].numpy(), nodes, atol=1e-6)


def test_max_paths_per_pair_keeps_most_relevant(toy_store, cache_root):
    retriever = make_retriever(toy_store, cache_root, max_paths_per_pair=1)
    graph = retriever.retrieve_pair(QUESTION, "ocean")

    query = retriever.cache.embed([f"{QUESTION} ocean"])[0]
    scores = {text: float(retriever.cache.embed([text])[0] @ query) for text in ("sea", "beach")}
    best = max(scores, key=scores.get)
    assert node_texts(graph, toy_store)[4:] == [best]


def test_max_nodes_prunes_choice_concepts_last(toy_store, cache_root):
    graph = make_retriever(toy_store, cache_root, max_nodes=2).retrieve_pair(QUESTION, "ocean")
    texts = node_texts(graph, toy_store)
    assert graph.num_nodes == 3
    assert "ocean" in texts
    assert graph.node_type.tolist().count(1) == 1


def test_one_hop_only(toy_store, cache_root):
    graph = make_retriever(toy_store, cache_root, max_hops=1).retrieve_pair(QUESTION, "ocean")
    assert node_texts(graph, toy_store) == ["<context>", "find", "jellyfish", "ocean"]


def test_no_grounded_concept_gives_context_node(toy_store, cache_root):
    graph = make_retriever(toy_store, cache_root).retrieve("Qwerty zxcv?", [])
    assert graph.num_nodes == 1
    assert graph.x.shape == (1, 384)
    assert graph.edge_index.shape == (2, 0)
    assert graph.node_type.tolist() == [0]
    assert graph.question_concepts == []
    assert graph.choice_concepts == []

    empty = make_retriever(toy_store, cache_root).retrieve("", ["", ""])
    assert empty.num_nodes == 1


def test_free_form_question_links_its_concepts(toy_store, cache_root):
    graph = make_retriever(toy_store, cache_root).retrieve("jellyfish and the ocean", [])
    texts = node_texts(graph, toy_store)
    assert texts[:3] == ["<context>", "jellyfish", "ocean"]
    assert sorted(texts[3:]) == ["beach", "sea"]
    assert graph.node_choice.tolist() == [-1] * graph.num_nodes


def test_concept_in_question_and_choice_counts_as_choice(toy_store, cache_root):
    graph = make_retriever(toy_store, cache_root).retrieve("Is a jellyfish found in the ocean?", ["ocean", "desert"])
    texts = node_texts(graph, toy_store)
    ocean = texts.index("ocean")
    assert graph.node_type[ocean] == 2
    assert graph.node_choice[ocean] == 0
    assert graph.question_concepts == ["jellyfish", "find", "ocean"]


def test_dense_neighbours_and_fallback(toy_store, cache_root):
    # A minimum score of -1 admits any neighbour, so the one event in the toy graph is always nearest.
    retriever = make_retriever(toy_store, cache_root, dense_scope="events", dense_min_score=-1.0,
                               dense_neighbours=1)
    graph = retriever.retrieve(QUESTION, CHOICES)
    texts = node_texts(graph, toy_store)
    event = texts.index("PersonX swims in the ocean")

    # The choice "xyzzy" matches no n-gram, so its concept comes from the dense index.
    assert graph.choice_concepts[2] == ["PersonX swims in the ocean"]
    assert graph.node_type[event] == 2
    assert graph.node_choice[event] == 2
    assert ("<context>", "context", "PersonX swims in the ocean") in named_edges(graph, toy_store)

    strict = make_retriever(toy_store, cache_root, dense_scope="events", dense_min_score=0.99)
    assert strict.retrieve(QUESTION, CHOICES).choice_concepts[2] == []


def test_dense_neighbour_is_other_node(toy_store, cache_root):
    retriever = make_retriever(toy_store, cache_root, dense_scope="events", dense_min_score=-1.0,
                               dense_neighbours=1)
    graph = retriever.retrieve_pair(QUESTION, "ocean")
    texts = node_texts(graph, toy_store)
    event = texts.index("PersonX swims in the ocean")
    assert graph.node_type[event] == 3
    assert ("PersonX swims in the ocean", "context_reverse", "<context>") in named_edges(graph, toy_store)


def test_batch_matches_single_and_warm_cache(toy_store, cache_root):
    retriever = make_retriever(toy_store, cache_root)
    items = [(QUESTION, CHOICES), ("jellyfish and the ocean", []), ("What do camels eat?", ["animal"])]
    batch = retriever.retrieve_many(items)

    warm = make_retriever(toy_store, cache_root)
    for (question, choices), graph in zip(items, batch):
        single = warm.retrieve(question, choices)
        assert torch.equal(single.node_id, graph.node_id)
        assert torch.equal(single.edge_index, graph.edge_index)
        assert torch.equal(single.edge_type, graph.edge_type)
        assert torch.allclose(single.x, graph.x)
    assert warm.cache.encoded == 0


def test_from_config_missing_graph(tmp_path):
    config = load_config(overrides=[f"graph.dir={tmp_path}", "graph.name=absent", f"data.cache_dir={tmp_path}"])
    with pytest.raises(GraphStoreError, match=f"graph folder {tmp_path}/absent is not found; build it with"):
        SubgraphRetriever.from_config(config)


def test_from_config_small_graph(small_graph_overrides):
    config = load_config(overrides=small_graph_overrides)
    retriever = SubgraphRetriever.from_config(config)
    graph = retriever.retrieve("Where are you likely to find a hamburger?",
                               ["fast food restaurant", "pizza", "ground up dead cows", "mouth", "cow carcus"])
    assert "hamburger" in graph.question_concepts
    assert [normalize(text) for text in graph.choice_concepts[0]] == ["fast food restaurant"]
    assert graph.num_nodes > 6
