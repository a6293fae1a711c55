"""Readers of the public graph formats, on small files written in each official layout."""

from __future__ import annotations

import gzip
import itertools
import json
from pathlib import Path

import pytest

from kgreason.data.locator import default_mirror
from kgreason.graph.readers import GraphSourceError, SourceReport, read_source


def read_all(kind: str, path: Path, strict: bool = True) -> tuple[list, SourceReport]:
    report = SourceReport(path, kind)
    return list(read_source(kind, path, report, strict=strict)), report


def conceptnet5_line(relation: str, start: str, end: str, info: str = '{"weight": 2.0}') -> str:
    return f"/a/[{relation},{start},{end}]\t{relation}\t{start}\t{end}\t{info}\n"


CONCEPTNET5_LINES = [
    conceptnet5_line("/r/IsA", "/c/en/ice_hockey/n", "/c/en/sport"),
    conceptnet5_line("/r/AtLocation", "/c/en/jellyfish", "/c/en/ocean/n/wn/object",
                     '{"weight": 1.5, "dataset": "/d/x"}'),
    conceptnet5_line("/r/Synonym", "/c/en/car", "/c/fr/voiture"),
    conceptnet5_line("/r/RelatedTo", "/c/de/hund", "/c/en/dog"),
    conceptnet5_line("/r/ExternalURL", "/c/en/dog", "http://dbpedia.org/resource/Dog"),
    conceptnet5_line("/r/dbpedia/genre", "/c/en/beatles", "/c/en/rock_music"),
    conceptnet5_line("/r/IsA", "/c/en/dog", "/c/en/dog"),
]


def write_gzip(path: Path, text: str) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as stream:
        stream.write(text)
    return path


def test_conceptnet5_keeps_english_edges(tmp_path):
    path = write_gzip(tmp_path / "assertions.csv.gz", "".join(CONCEPTNET5_LINES))
    edges, report = read_all("conceptnet5", path)

    assert [(e.head, e.relation, e.tail) for e in edges] == [
        ("ice hockey", "/r/IsA", "sport"),
        ("jellyfish", "/r/AtLocation", "ocean"),
        ("beatles", "/r/dbpedia/genre", "rock music"),
        ("dog", "/r/IsA", "dog"),
    ]
    assert [e.weight for e in edges] == [2.0, 1.5, 2.0, 2.0]
    assert [e.line for e in edges] == [1, 2, 6, 7]
    assert report.skipped["non_english"] == 2
    assert report.skipped["not_concept"] == 1
    assert report.lines == 7


def test_conceptnet5_malformed_json_names_line(tmp_path):
    lines = CONCEPTNET5_LINES[:2] + [conceptnet5_line("/r/IsA", "/c/en/cat", "/c/en/pet", '{"weight": 1.0')]
    path = write_gzip(tmp_path / "bad_json.csv.gz", "".join(lines))

    with pytest.raises(GraphSourceError) as caught:
        read_all("conceptnet5", path)
    message = str(caught.value)
    assert f"{path}:3:" in message
    assert "JSON column" in message
    assert "data.strict=false" in message


def test_conceptnet5_lenient_skips_malformed(tmp_path):
    lines = CONCEPTNET5_LINES[:2] + [conceptnet5_line("/r/IsA", "/c/en/cat", "/c/en/pet", "not json"),
                                     "only\ttwo columns\n"]
    path = tmp_path / "lenient.csv"
    path.write_text("".join(lines), encoding="utf-8")

    edges, report = read_all("conceptnet5", path, strict=False)
    assert len(edges) == 2
    assert report.skipped["malformed"] == 2
    assert report.first_problem.startswith(f"{path}:3:")


def test_truncated_gzip_names_file_and_line(tmp_path):
    whole = write_gzip(tmp_path / "whole.csv.gz", "".join(CONCEPTNET5_LINES * 200))
    data = whole.read_bytes()
    truncated = tmp_path / "truncated.csv.gz"
    truncated.write_bytes(data[: len(data) // 2])

    with pytest.raises(GraphSourceError) as caught:
        read_all("conceptnet5", truncated)
    message = str(caught.value)
    assert str(truncated) in message
    assert "truncated or corrupt" in message
    assert "after line" in message
    assert "download the file again" in message


def test_missing_source_file(tmp_path):
    with pytest.raises(GraphSourceError, match="not found"):
        read_all("cn100k", tmp_path / "absent.txt")


def test_invalid_utf8_names_line(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("IsA\tdog\tanimal\n".encode() + "IsA\tcaf\xe9\tplace\n".encode("latin-1"))
    with pytest.raises(GraphSourceError, match=r"latin1.txt:2: not valid UTF-8"):
        read_all("cn100k", path)


def test_cn100k_labels_and_columns(tmp_path):
    path = tmp_path / "dev1.txt"
    path.write_text("IsA\ttool\tobject\t1\nAtLocation\tferret\tpet store\t0\nCapableOf\tdog\tbark\n", encoding="utf-8")
    edges, report = read_all("cn100k", path)

    assert [(e.relation, e.head, e.tail) for e in edges] == [("IsA", "tool", "object"), ("CapableOf", "dog", "bark")]
    assert report.skipped["negative_label"] == 1


def test_cn100k_bad_label(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("IsA\ttool\tobject\tyes\n", encoding="utf-8")
    with pytest.raises(GraphSourceError, match=r"bad.txt:1: label 'yes' is not 0 or 1"):
        read_all("cn100k", path)


CONCEPTNET4_TSV = (
    "head\trel\ttail\tfreq\tscore\n"
    "computer hacker\tAtLocation\tbuild\t5\t1\n"
    "person\tDesires\twar\t-5\t3\n"
    "dna\tIsA\tplanet\t-5\t1\n"
)

CONCEPTNET4_GRAPH = (
    "computer hacker\tbuild\t{'freq': 5, 'score': 1, 'rel': u'AtLocation'}\n"
    "person\twar\t{'freq': -5, 'score': 3, 'rel': u'Desires'}\n"
    "dna\tplanet\t{'score': 1, 'rel': u'IsA', 'freq': -5}\n"
)


def test_conceptnet4_tsv_and_graph_agree(tmp_path):
    tsv = tmp_path / "conceptnet4_en_edges.tsv"
    tsv.write_text(CONCEPTNET4_TSV, encoding="utf-8")
    graph = write_gzip(tmp_path / "conceptnet_en.graph.gz", CONCEPTNET4_GRAPH)

    from_tsv, _ = read_all("conceptnet4", tsv)
    from_graph, _ = read_all("conceptnet4", graph)
    expected = [("computer hacker", "AtLocation", "build", 1.0), ("person", "NotDesires", "war", 3.0),
                ("dna", "NotIsA", "planet", 1.0)]
    assert [(e.head, e.relation, e.tail, e.weight) for e in from_tsv] == expected
    assert [(e.head, e.relation, e.tail, e.weight) for e in from_graph] == expected


def test_conceptnet4_graph_rejects_code(tmp_path):
    # The dict column is parsed with ast.literal_eval: an expression is an error, never run.
    path = write_gzip(tmp_path / "evil.graph.gz", "a\tb\t{'rel': __import__('os').getcwd()}\n")
    with pytest.raises(GraphSourceError, match=r"evil.graph.gz:1: the edge dict .* is invalid"):
        read_all("conceptnet4", path)


def test_conceptnet4_unknown_layout(tmp_path):
    path = tmp_path / "other.tsv"
    path.write_text("a,b,c\n", encoding="utf-8")
    with pytest.raises(GraphSourceError, match="not a ConceptNet 4 file"):
        read_all("conceptnet4", path)


def test_conceptnet4_mirror_files_agree():
    folder = default_mirror() / "conceptnet4-divisi2"
    tsv = read_source("conceptnet4", folder / "conceptnet4_en_edges.tsv", SourceReport(folder, "conceptnet4"))
    graph = read_source("conceptnet4", folder / "conceptnet_en.graph.gz", SourceReport(folder, "conceptnet4"))
    for from_tsv, from_graph in itertools.islice(zip(tsv, graph), 20000):
        assert from_tsv[:4] == from_graph[:4]


ATOMIC_HEADER = "event,oEffect,oReact,oWant,xAttr,xEffect,xIntent,xNeed,xReact,xWant,prefix,split\n"


def atomic_row(event: str, **answers: list[str]) -> str:
    columns = ["oEffect", "oReact", "oWant", "xAttr", "xEffect", "xIntent", "xNeed", "xReact", "xWant"]
    cells = [json.dumps(answers.get(column, [])) for column in columns]
    quoted = ['"' + cell.replace('"', '""') + '"' for cell in cells]
    return ",".join([event, *quoted, '"[]"', "dev"]) + "\n"


def test_atomic2019_drops_none(tmp_path):
    path = tmp_path / "v4_atomic_dev.csv"
    path.write_text(ATOMIC_HEADER + atomic_row("PersonX plays a ___ in the war", oReact=["none"],
                                                xIntent=["to participate"], xReact=["tired", "None "]),
                    encoding="utf-8")
    edges, report = read_all("atomic2019", path)

    assert [(e.head, e.relation, e.tail) for e in edges] == [
        ("PersonX plays a ___ in the war", "xIntent", "to participate"),
        ("PersonX plays a ___ in the war", "xReact", "tired"),
    ]
    assert report.skipped["none_answer"] == 2


def test_atomic2019_bad_json_names_line(tmp_path):
    path = tmp_path / "v4_atomic_tst.csv"
    good = atomic_row("PersonX eats", xNeed=["food"])
    bad = good.replace('"[""food""]"', '"[""food"""')
    path.write_text(ATOMIC_HEADER + good + bad, encoding="utf-8")
    with pytest.raises(GraphSourceError, match=r"v4_atomic_tst.csv:3: invalid JSON list"):
        read_all("atomic2019", path)


def test_atomic2019_missing_columns(tmp_path):
    path = tmp_path / "wrong.csv"
    path.write_text("event,xIntent\nPersonX eats,[]\n", encoding="utf-8")
    with pytest.raises(GraphSourceError, match=r"lacks column\(s\) oEffect"):
        read_all("atomic2019", path)


def test_atomic2020_both_layouts(tmp_path):
    path = tmp_path / "atomic2020.tsv"
    path.write_text(
        "PersonX dates for years @@ xWant\tto propose| to get married| none\n"
        "congregation\tMadeUpOf\tpeople\n",
        encoding="utf-8",
    )
    edges, report = read_all("atomic2020", path)
    assert [(e.head, e.relation, e.tail) for e in edges] == [
        ("PersonX dates for years", "xWant", "to propose"),
        ("PersonX dates for years", "xWant", "to get married"),
        ("congregation", "MadeUpOf", "people"),
    ]
    assert report.skipped["none_answer"] == 1


def test_atomic2020_bad_line(tmp_path):
    path = tmp_path / "atomic2020.tsv"
    path.write_text("just one column\n", encoding="utf-8")
    with pytest.raises(GraphSourceError, match=r"atomic2020.tsv:1: expected"):
        read_all("atomic2020", path)


def test_unknown_source_kind(tmp_path):
    with pytest.raises(GraphSourceError, match="unknown graph source kind 'wordnet'"):
        read_source("wordnet", tmp_path / "x", SourceReport(tmp_path, "wordnet"))
