"""Building a store from several sources, reading it back, and detecting damaged folders."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import numpy as np
import pytest

from kgreason.graph.build import build_graph
from kgreason.graph.readers import GraphSourceError
from kgreason.graph.sources import SOURCE_BITS, GraphSource
from kgreason.graph.store import EVENT_FLAG, VERIFIED_FILE, GraphStore, GraphStoreError

CONCEPTNET4 = (
    "head\trel\ttail\tfreq\tscore\n"
    "dog\tIsA\tanimal\t5\t2\n"
    "dog\tIsA\tanimal\t5\t3\n"
    "computer\tHasA\tkeyboard\t5\t1\n"
    "dog\tIsA\tdog\t5\t1\n"
    "the\tIsA\tanimal\t5\t1\n"
    "dog\tSimilarSize\tcat\t5\t1\n"
    "person\tDesires\twar\t-5\t1\n"
    "jellyfish\tAtLocation\tsea\t5\t1\n"
)

CN100K = (
    "IsA\tdogs\tanimals\n"
    "AtLocation\tjellyfish\tocean\n"
    "AtLocation\tsea\tocean\n"
    "SymbolOf\tdove\tpeace\n"
)

ATOMIC2020 = "PersonX walks the dog @@ xIntent\tto exercise| none\n"


@pytest.fixture()
def sources(tmp_path) -> list[GraphSource]:
    (tmp_path / "cn4.tsv").write_text(CONCEPTNET4, encoding="utf-8")
    (tmp_path / "cn100k.txt").write_text(CN100K, encoding="utf-8")
    (tmp_path / "atomic2020.tsv").write_text(ATOMIC2020, encoding="utf-8")
    return [GraphSource("conceptnet4", tmp_path / "cn4.tsv"), GraphSource("cn100k", tmp_path / "cn100k.txt"),
            GraphSource("atomic2020", tmp_path / "atomic2020.tsv")]


@pytest.fixture()
def built(sources, tmp_path) -> Path:
    folder = tmp_path / "graphs" / "toy"
    build_graph(sources, folder, progress=False, command="python -m kgreason.graph build --cn100k toy.txt")
    return folder


def edge_set(store: GraphStore) -> set[tuple[str, str, str]]:
    """Forward edges as (head key, relation name, tail key)."""
    edges = set()
    for node in range(store.num_nodes):
        neighbours, relations = store.neighbors(node)
        for neighbour, relation in zip(neighbours.tolist(), relations.tolist()):
            if not store.schema.is_reverse(relation):
                edges.add((store.keys[node], store.schema.relation_names[relation], store.keys[neighbour]))
    return edges


def test_build_merges_sources(built):
    store = GraphStore.open(built)

    assert edge_set(store) == {
        ("dog", "isa", "animal"),
        ("keyboard", "partof", "computer"),
        ("person", "notdesires", "war"),
        ("jellyfish", "atlocation", "sea"),
        ("jellyfish", "atlocation", "ocean"),
        ("sea", "atlocation", "ocean"),
        ("personx walk dog", "xIntent", "exercise"),
    }
    counts = store.meta["counts"]
    assert counts["edges"] == 7
    assert counts["nodes"] == store.num_nodes == 11
    assert counts["dropped"] == {"duplicate": 2, "empty_concept": 1, "self_loop": 1}
    assert counts["unknown_relations"] == {"conceptnet4:SimilarSize": 1, "cn100k:SymbolOf": 1}
    assert counts["edges_per_relation"]["atlocation"] == 3
    assert counts["edges_per_source"] == {"conceptnet4": 4, "cn100k": 3, "atomic2020": 1}
    assert counts["event_nodes"] == 1


def test_store_round_trip(built):
    store = GraphStore.open(built)
    schema = store.schema
    dog, animal = store.lookup("dog"), store.lookup("animal")

    # Duplicates keep the largest weight and the union of their sources.
    neighbours, relations = store.neighbors(dog)
    assert neighbours.tolist() == [animal]
    assert relations.tolist() == [schema.relation_id("isa")]
    entry = int(store.indptr[dog])
    assert store.edge_weight[entry] == 3.0
    assert store.edge_sources[entry] == SOURCE_BITS["conceptnet4"] | SOURCE_BITS["cn100k"]

    # Every edge is stored in both directions.
    assert store.edges_between(animal, dog) == [schema.reverse(schema.relation_id("isa"))]

    # Display texts prefer CN-100K's surface forms; keys are normalised.
    assert store.concept_text(dog) == "dogs"
    assert store.keys[dog] == "dog"
    assert store.concept_text(store.lookup("exercise")) == "to exercise"
    assert store.lookup("cat") is None

    event = store.lookup("personx walk dog")
    assert store.node_flags[event] & EVENT_FLAG
    assert store.event_ids.tolist() == [event]
    assert store.concept_text(event) == "PersonX walks the dog"

    assert isinstance(store.indices, np.memmap)
    assert store.meta["sources"][0]["sha256"]
    assert set(store.meta["files"]) == {p.name for p in built.iterdir()} - {"meta.json", VERIFIED_FILE}


def test_paths_two_hops(built):
    store = GraphStore.open(built)
    jellyfish, ocean = store.lookup("jellyfish"), store.lookup("ocean")

    paths = store.paths(jellyfish, ocean)
    rendered = [store.render_path(path) for path in paths]
    assert rendered == [
        "jellyfish is typically found at ocean",
        "jellyfish is typically found at sea; sea is typically found at ocean",
    ]
    assert store.paths(jellyfish, ocean, max_hops=1) == paths[:1]


def test_rebuild_replaces_folder(built, sources):
    first = json.loads((built / "meta.json").read_text())
    build_graph(sources[:1], built, progress=False)
    store = GraphStore.open(built)

    assert store.meta["checksum"] != first["checksum"]
    assert [source["kind"] for source in store.meta["sources"]] == ["conceptnet4"]
    assert sorted(p.name for p in built.parent.iterdir()) == ["toy"]


def test_failed_build_leaves_old_store(built, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("IsA\tdog\n", encoding="utf-8")
    with pytest.raises(GraphSourceError, match="bad.txt:1"):
        build_graph([GraphSource("cn100k", bad)], built, progress=False)

    assert GraphStore.open(built).meta["counts"]["edges"] == 7
    assert sorted(p.name for p in built.parent.iterdir()) == ["toy"]


def test_missing_folder_names_build_command(tmp_path):
    with pytest.raises(GraphStoreError) as caught:
        GraphStore.open(tmp_path / "nowhere" / "mine")
    message = str(caught.value)
    assert "nowhere/mine is not found" in message
    assert f"python -m kgreason.graph build graph.dir={tmp_path / 'nowhere'} graph.name=mine" in message


def test_corrupt_file_detected(built):
    GraphStore.open(built)
    assert (built / VERIFIED_FILE).is_file()

    path = built / "indices.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))

    with pytest.raises(GraphStoreError) as caught:
        GraphStore.open(built)
    message = str(caught.value)
    assert f"graph folder {built} is corrupt: indices.npy" in message
    assert "python -m kgreason.graph build --cn100k toy.txt" in message


def test_verified_stamp_skips_hashing(built, monkeypatch):
    GraphStore.open(built)
    calls = []
    monkeypatch.setattr("kgreason.graph.store.sha256_file", lambda path: calls.append(path) or "")
    GraphStore.open(built)
    assert calls == []

    # Touching a file invalidates the stamp, so the files are hashed again.
    os.utime(built / "node_keys.txt", ns=(1, 1))
    with pytest.raises(GraphStoreError, match="corrupt"):
        GraphStore.open(built)
    assert calls


def test_partial_folder_detected(built):
    (built / "node_texts.txt").unlink()
    with pytest.raises(GraphStoreError, match=r"is partial: node_texts.txt missing; rebuild it with: python -m"):
        GraphStore.open(built)


def test_folder_without_meta(built):
    (built / "meta.json").unlink()
    with pytest.raises(GraphStoreError, match=r"is incomplete \(no meta.json\); build it with"):
        GraphStore.open(built)


def test_unreadable_meta(built):
    (built / "meta.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(GraphStoreError, match="unreadable meta.json"):
        GraphStore.open(built)


def test_other_normaliser_version(built):
    meta = json.loads((built / "meta.json").read_text())
    meta["normaliser_version"] = 0
    (built / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(GraphStoreError, match="built with normaliser_version 0.*rebuild it with"):
        GraphStore.open(built)


def test_build_from_conceptnet5(tmp_path):
    lines = [
        "/a/1\t/r/IsA\t/c/en/ice_hockey/n\t/c/en/sport\t{\"weight\": 2.0}\n",
        "/a/2\t/r/Synonym\t/c/en/car\t/c/fr/voiture\t{\"weight\": 1.0}\n",
        "/a/3\t/r/HasA\t/c/en/car/n\t/c/en/wheel\t{\"weight\": 4.0}\n",
        "/a/4\t/r/FormOf\t/c/en/cars\t/c/en/car\t{\"weight\": 1.0}\n",
    ]
    path = tmp_path / "conceptnet-assertions-5.7.0.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as stream:
        stream.writelines(lines)

    meta = build_graph([GraphSource("conceptnet5", path)], tmp_path / "cn5", progress=False)
    store = GraphStore.open(tmp_path / "cn5")
    assert edge_set(store) == {("ice hockey", "isa", "sport"), ("wheel", "partof", "car")}
    assert meta["counts"]["unknown_relations"] == {"conceptnet5:/r/FormOf": 1}
    assert meta["sources"][0]["skipped"] == {"non_english": 1}


def test_ensure_graph_builds_missing_store(tmp_path, monkeypatch):
    from kgreason.config import load_config
    from kgreason.graph import build as build_module

    built_sources = []
    monkeypatch.setattr(build_module, "build_graph",
                        lambda sources, folder, **kwargs: built_sources.append((sources, folder, kwargs)))
    config = load_config(overrides=[f"graph.dir={tmp_path}", "graph.name=fresh", "graph.sources=[cn100k]"])
    folder = build_module.ensure_graph(config, progress=False)

    assert folder == tmp_path / "fresh"
    ((sources, target, options),) = built_sources
    assert [source.path.name for source in sources] == ["train.txt", "valid.txt", "test.txt"]
    assert target == folder
    assert options["command"] == f"python -m kgreason.graph build graph.dir={tmp_path} graph.name=fresh"


def test_ensure_graph_keeps_user_built_error(built):
    from kgreason.config import load_config
    from kgreason.graph.build import ensure_graph

    (built / "node_keys.txt").unlink()
    config = load_config(overrides=[f"graph.dir={built.parent}", f"graph.name={built.name}"])
    with pytest.raises(GraphStoreError, match="--cn100k toy.txt"):
        ensure_graph(config)


def test_ensure_graph_opens_existing_store(built):
    from kgreason.config import load_config
    from kgreason.graph.build import ensure_graph

    config = load_config(overrides=[f"graph.dir={built.parent}", f"graph.name={built.name}"])
    assert ensure_graph(config) == built
