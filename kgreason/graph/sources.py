"""Source files of a graph: the default mirror sources and files given by the user."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kgreason.graph.readers import SOURCE_KINDS, GraphSourceError

MIRROR_SOURCES = ("conceptnet4", "cn100k", "atomic")
"""Names accepted in ``graph.sources``: each expands to the mirror files below."""

_MIRROR_FILES: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    # The TSV is a plain-text copy of conceptnet_en.graph.gz and reads about 5x faster.
    "conceptnet4": [("conceptnet4", ("conceptnet4-divisi2/conceptnet4_en_edges.tsv",
                                     "conceptnet4-divisi2/conceptnet_en.graph.gz"))],
    # valid and test hold positive edges only; dev1/dev2 mix in negatives and repeat valid.
    "cn100k": [
        ("cn100k", ("conceptnet-cn100k/train.txt",)),
        ("cn100k", ("conceptnet-cn100k/valid.txt",)),
        ("cn100k", ("conceptnet-cn100k/test.txt",)),
    ],
    # The ATOMIC 2019 train split is not public in the mirror; dev and test are.
    "atomic": [
        ("atomic2019", ("atomic/v4_atomic_dev.csv",)),
        ("atomic2019", ("atomic/v4_atomic_tst.csv",)),
        ("atomic2020", ("atomic/atomic2020_system_eval_test.tsv",)),
    ],
}

# Source kind -> display rank of its surface forms: a node shows the text of the best-ranked source
# that mentions it. ConceptNet 4 comes last because its concepts are already lemmatised and stripped
# of stop words ("price gold"), which reads worse than CN-100K's "price of gold".
DISPLAY_RANK = {"cn100k": 0, "conceptnet5": 1, "atomic2020": 2, "atomic2019": 2, "conceptnet4": 3}

# Bit of each source kind in the per-node and per-edge source masks of a store.
SOURCE_BITS = {kind: 1 << index for index, kind in enumerate(SOURCE_KINDS)}


@dataclass(frozen=True)
class GraphSource:
    """One file to read and the format to read it in."""

    kind: str
    """One of SOURCE_KINDS."""

    path: Path


def mirror_sources(root: Path, names: list[str] | tuple[str, ...]) -> list[GraphSource]:
    """Return the mirror files behind ``names`` (see MIRROR_SOURCES), checked to exist under ``root``."""
    sources = []
    for name in names:
        if name not in _MIRROR_FILES:
            raise GraphSourceError(
                f"unknown graph source {name!r} in graph.sources; choose from {', '.join(MIRROR_SOURCES)}, "
                "or pass your own files with --conceptnet, --conceptnet4, --cn100k, --atomic or --atomic2020"
            )
        for kind, candidates in _MIRROR_FILES[name]:
            found = next((root / candidate for candidate in candidates if (root / candidate).is_file()), None)
            if found is None:
                raise GraphSourceError(
                    f"graph source {name!r}: {root / candidates[0]} not found; set data.root or KGREASON_DATA "
                    "to the data mirror, or pass the files with the source options"
                )
            sources.append(GraphSource(kind, found))
    return sources
