"""Streaming readers for the public knowledge-graph formats.

Each reader yields ``SourceEdge(head, relation, tail, weight, line)`` one line at a time, so memory
stays constant whatever the file size; plain and gzip-compressed files are both accepted. Readers
only parse: mapping relation names onto the schema, normalising concepts and removing self-loops
and duplicates happen in ``kgreason.graph.build``.

Formats:

- ConceptNet 5 assertions (``conceptnet-assertions-5.7.0.csv.gz``): tab-separated edge URI, relation
  URI, start URI, end URI and a JSON object with ``weight``. Only edges whose both ends are English
  (``/c/en/``) are kept; a part-of-speech suffix (``/c/en/run/v``) is dropped.
- ConceptNet 4 from the Divisi2 package: the TSV ``head rel tail freq score`` with a header, or the
  original ``conceptnet_en.graph.gz`` with a Python 2 dict literal per edge, parsed with
  ``ast.literal_eval`` (never ``eval``). A negative ``freq`` marks a negated assertion
  ("people do not want war"), read as the ``Not`` form of the relation.
- CN-100K: ``Rel<TAB>head<TAB>tail``, with an optional fourth 0/1 label column (rows labelled 0
  are negative samples and are skipped).
- ATOMIC 2019: CSV with an ``event`` column and nine relation columns of JSON lists. The
  annotation ``none`` is dropped.
- ATOMIC-2020: ``head<TAB>relation<TAB>tail`` (the released train/dev/test files) or
  ``head @@ relation<TAB>tail|tail|...`` (the system-evaluation file).
"""

from __future__ import annotations

import ast
import csv
import gzip
import json
import logging
import re
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from kgreason.errors import KgreasonError

logger = logging.getLogger(__name__)

SOURCE_KINDS = ("conceptnet5", "conceptnet4", "cn100k", "atomic2019", "atomic2020")

ATOMIC2019_RELATIONS = ("oEffect", "oReact", "oWant", "xAttr", "xEffect", "xIntent", "xNeed", "xReact", "xWant")

LENIENT_HINT = "fix or remove the line, or pass data.strict=false to skip malformed lines"


class GraphSourceError(KgreasonError, ValueError):
    """A knowledge-graph source file that is missing, truncated or malformed."""


class SourceEdge(NamedTuple):
    """One edge as written in a source file, before normalisation."""

    head: str
    relation: str
    tail: str
    weight: float
    line: int


@dataclass
class SourceReport:
    """Counts of the lines and edges kept and skipped while reading one source file."""

    path: Path
    kind: str
    lines: int = 0
    edges: int = 0
    skipped: Counter = field(default_factory=Counter)
    """Lines or edges skipped, by reason: malformed, non_english, not_concept, none_answer, negative_label."""

    first_problem: str | None = None

    def skip(self, reason: str, problem: str | None = None) -> None:
        self.skipped[reason] += 1
        if problem is not None and self.first_problem is None:
            self.first_problem = problem


def _malformed(path: Path, line: int, problem: str, report: SourceReport, strict: bool) -> None:
    """Raise for a malformed line in strict mode, else count it and carry on."""
    message = f"{path}:{line}: {problem}"
    if strict:
        raise GraphSourceError(f"{message}; {LENIENT_HINT}")
    report.skip("malformed", message)


def iter_text_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, text without the line break) of a UTF-8 file, gzip or plain.

    Raises GraphSourceError naming the file and line for a missing file, a truncated or corrupt
    gzip stream and bytes that are not UTF-8.
    """
    path = Path(path)
    if not path.is_file():
        raise GraphSourceError(f"graph source {path} not found; check the path or the data mirror (data.root)")

    with open(path, "rb") as raw:
        compressed = raw.read(2) == b"\x1f\x8b"
    opener = gzip.open if compressed else open

    number = 0
    try:
        with opener(path, "rb") as stream:
            for number, data in enumerate(stream, start=1):
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError as error:
                    raise GraphSourceError(
                        f"{path}:{number}: not valid UTF-8 (byte {error.start}); convert the file to UTF-8 "
                        "or download it again"
                    ) from None
                yield number, text.rstrip("\r\n")
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise GraphSourceError(
            f"{path}: the gzip stream is truncated or corrupt after line {number} ({error}); "
            "download the file again"
        ) from None


# --- ConceptNet 5 -------------------------------------------------------------------------------

def _conceptnet5_concept(uri: str) -> tuple[str, str] | None:
    """``/c/en/ice_hockey/n`` -> ("en", "ice hockey"); None when ``uri`` is not a concept URI."""
    parts = uri.split("/")
    if len(parts) < 4 or parts[0] or parts[1] != "c" or not parts[2] or not parts[3]:
        return None
    return parts[2], parts[3].replace("_", " ")


def read_conceptnet5(path: str | Path, report: SourceReport, strict: bool = True) -> Iterator[SourceEdge]:
    """Edges between two English concepts in a ConceptNet 5 assertions file."""
    path = Path(path)
    for number, text in iter_text_lines(path):
        report.lines += 1
        if not text.strip():
            continue
        columns = text.split("\t")
        if len(columns) != 5:
            _malformed(path, number, f"expected 5 tab-separated columns (edge, relation, start, end, JSON), "
                                     f"got {len(columns)}", report, strict)
            continue
        _, relation, start, end, info = columns

        # Most of the 34M assertions have a non-English end; the prefix test rejects them cheaply.
        if not (start.startswith("/c/en/") and end.startswith("/c/en/")):
            start_concept = _conceptnet5_concept(start)
            end_concept = _conceptnet5_concept(end)
            # ExternalURL edges point at web addresses, and a few others at non-concept URIs.
            report.skip("not_concept" if start_concept is None or end_concept is None else "non_english")
            continue
        start_concept = _conceptnet5_concept(start)
        end_concept = _conceptnet5_concept(end)
        if start_concept is None or end_concept is None:
            report.skip("not_concept")
            continue
        head, tail = start_concept[1], end_concept[1]

        try:
            weight = float(json.loads(info).get("weight", 1.0))
        except (json.JSONDecodeError, AttributeError, TypeError, ValueError) as error:
            _malformed(path, number, f"the JSON column is invalid ({error}): {info[:80]!r}", report, strict)
            continue

        report.edges += 1
        yield SourceEdge(head, relation, tail, weight, number)


# --- ConceptNet 4 -------------------------------------------------------------------------------

CONCEPTNET4_HEADER = ["head", "rel", "tail", "freq", "score"]

# The common shape of a Divisi2 edge dict, parsed without ast for speed; anything else falls back
# to ast.literal_eval.
_CONCEPTNET4_DICT = re.compile(r"\{'freq': (-?\d+), 'score': (-?\d+), 'rel': u?'([A-Za-z]+)'\}")


def _conceptnet4_edge(head: str, relation: str, tail: str, frequency: int, score: float, number: int) -> SourceEdge:
    # ConceptNet 4 marks a negated assertion with a negative frequency ("not", "never").
    if frequency < 0:
        relation = "Not" + relation
    return SourceEdge(head, relation, tail, float(score), number)


def _parse_conceptnet4_dict(literal: str) -> tuple[str, int, float]:
    """(relation, freq, score) from ``{'freq': 5, 'score': 1, 'rel': u'PartOf'}``; raises ValueError."""
    match = _CONCEPTNET4_DICT.fullmatch(literal)
    if match:
        return match.group(3), int(match.group(1)), float(match.group(2))

    try:
        value = ast.literal_eval(literal)
    except (ValueError, SyntaxError, MemoryError, RecursionError) as error:
        raise ValueError(f"not a Python dict literal ({type(error).__name__})") from None
    if not isinstance(value, dict):
        raise ValueError(f"expected a dict literal, got {type(value).__name__}")
    try:
        return str(value["rel"]), int(value.get("freq", 1)), float(value.get("score", 1))
    except KeyError:
        raise ValueError("the dict has no 'rel' key") from None
    except (TypeError, ValueError) as error:
        raise ValueError(f"freq or score is not a number ({error})") from None


def read_conceptnet4(path: str | Path, report: SourceReport, strict: bool = True) -> Iterator[SourceEdge]:
    """Edges of ConceptNet 4 English, from the Divisi2 TSV or the original ``conceptnet_en.graph.gz``."""
    path = Path(path)
    layout = None
    for number, text in iter_text_lines(path):
        report.lines += 1
        if not text.strip():
            continue
        columns = text.split("\t")

        if layout is None:
            if columns == CONCEPTNET4_HEADER:
                layout = "tsv"
                continue
            if len(columns) == 3 and columns[2].startswith("{"):
                layout = "graph"
            else:
                raise GraphSourceError(
                    f"{path}:{number}: not a ConceptNet 4 file: expected the header "
                    f"{' '.join(CONCEPTNET4_HEADER)!r} (TSV) or 'head<TAB>tail<TAB>{{...}}' (conceptnet_en.graph.gz)"
                )

        if layout == "tsv":
            if len(columns) != 5:
                _malformed(path, number, f"expected 5 columns ({' '.join(CONCEPTNET4_HEADER)}), got {len(columns)}",
                           report, strict)
                continue
            head, relation, tail, frequency, score = columns
            try:
                edge = _conceptnet4_edge(head, relation, tail, int(frequency), float(score), number)
            except ValueError:
                _malformed(path, number, f"freq {frequency!r} or score {score!r} is not a number", report, strict)
                continue
        else:
            if len(columns) != 3:
                _malformed(path, number, f"expected 3 columns (head, tail, dict), got {len(columns)}", report, strict)
                continue
            head, tail, literal = columns
            try:
                relation, frequency, score = _parse_conceptnet4_dict(literal)
            except ValueError as error:
                _malformed(path, number, f"the edge dict {literal[:80]!r} is invalid: {error}", report, strict)
                continue
            edge = _conceptnet4_edge(head, relation, tail, frequency, score, number)

        report.edges += 1
        yield edge


# --- CN-100K ------------------------------------------------------------------------------------

def read_cn100k(path: str | Path, report: SourceReport, strict: bool = True) -> Iterator[SourceEdge]:
    """Edges of a CN-100K file; with a label column, only the rows labelled 1."""
    path = Path(path)
    for number, text in iter_text_lines(path):
        report.lines += 1
        if not text.strip():
            continue
        columns = text.split("\t")
        if len(columns) not in (3, 4):
            _malformed(path, number, f"expected 'Rel<TAB>head<TAB>tail[<TAB>label]', got {len(columns)} columns",
                       report, strict)
            continue
        if len(columns) == 4:
            label = columns[3].strip()
            if label not in ("0", "1"):
                _malformed(path, number, f"label {label!r} is not 0 or 1", report, strict)
                continue
            if label == "0":
                report.skip("negative_label")
                continue
        relation, head, tail = columns[:3]
        report.edges += 1
        yield SourceEdge(head, relation, tail, 1.0, number)


# --- ATOMIC -------------------------------------------------------------------------------------

def _is_none_answer(text: str) -> bool:
    return text.strip().lower() in ("none", "")


def read_atomic2019(path: str | Path, report: SourceReport, strict: bool = True) -> Iterator[SourceEdge]:
    """If-then edges of an ATOMIC 2019 CSV (``v4_atomic_*.csv``): event -> each listed annotation."""
    path = Path(path)
    lines = (text for _, text in iter_text_lines(path))
    reader = csv.reader(lines)
    try:
        header = next(reader)
    except StopIteration:
        raise GraphSourceError(f"{path}: file is empty; restore it from the ATOMIC release") from None

    missing = [name for name in ("event", *ATOMIC2019_RELATIONS) if name not in header]
    if missing:
        raise GraphSourceError(
            f"{path}:1: not an ATOMIC 2019 CSV: the header lacks column(s) {', '.join(missing)}"
        )
    event_column = header.index("event")
    relation_columns = [(name, header.index(name)) for name in ATOMIC2019_RELATIONS]

    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            raise GraphSourceError(f"{path}:{reader.line_num}: invalid CSV ({error}); {LENIENT_HINT}") from None
        number = reader.line_num
        report.lines += 1
        if not row:
            continue
        if len(row) != len(header):
            _malformed(path, number, f"expected {len(header)} CSV fields, got {len(row)}", report, strict)
            continue

        event = row[event_column]
        edges = []
        try:
            for relation, column in relation_columns:
                answers = json.loads(row[column])
                if not isinstance(answers, list):
                    raise ValueError(f"column {relation!r} is not a JSON list")
                for answer in answers:
                    if not isinstance(answer, str):
                        raise ValueError(f"column {relation!r} contains a non-string entry {answer!r}")
                    if _is_none_answer(answer):
                        report.skip("none_answer")
                        continue
                    edges.append(SourceEdge(event, relation, answer, 1.0, number))
        except (json.JSONDecodeError, ValueError) as error:
            _malformed(path, number, f"invalid JSON list ({error})", report, strict)
            continue

        report.edges += len(edges)
        yield from edges


def read_atomic2020(path: str | Path, report: SourceReport, strict: bool = True) -> Iterator[SourceEdge]:
    """Edges of an ATOMIC-2020 TSV, in the released or the system-evaluation layout."""
    path = Path(path)
    for number, text in iter_text_lines(path):
        report.lines += 1
        if not text.strip():
            continue
        columns = text.split("\t")
        if len(columns) == 3:
            head, relation, tails = columns[0], columns[1], [columns[2]]
        elif len(columns) == 2 and " @@ " in columns[0]:
            head, relation = columns[0].rsplit(" @@ ", 1)
            tails = columns[1].split("|")
        else:
            _malformed(path, number, "expected 'head<TAB>relation<TAB>tail' or 'head @@ relation<TAB>tail|tail'",
                       report, strict)
            continue

        for tail in tails:
            if _is_none_answer(tail):
                report.skip("none_answer")
                continue
            report.edges += 1
            yield SourceEdge(head.strip(), relation.strip(), tail.strip(), 1.0, number)


READERS = {
    "conceptnet5": read_conceptnet5,
    "conceptnet4": read_conceptnet4,
    "cn100k": read_cn100k,
    "atomic2019": read_atomic2019,
    "atomic2020": read_atomic2020,
}


def read_source(kind: str, path: str | Path, report: SourceReport, strict: bool = True) -> Iterator[SourceEdge]:
    """Stream the edges of ``path`` read as format ``kind`` (one of SOURCE_KINDS)."""
    if kind not in READERS:
        raise GraphSourceError(f"unknown graph source kind {kind!r}; choose one of {', '.join(SOURCE_KINDS)}")
    return READERS[kind](path, report, strict)
