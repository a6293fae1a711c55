"""Session fixtures shared by the test files: real graph stores and a private cache folder.

A test that needs a graph passes ``small_graph_overrides`` (or ``default_graph_overrides``) to
``load_config``. Both point ``data.cache_dir`` at a session folder, so embeddings and question
graphs stay out of the user's cache.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import graph_helpers
from kgreason.runtime import cache_dir


@pytest.fixture(scope="session")
def test_cache_dir(tmp_path_factory) -> Path:
    """An empty kgreason cache folder (embeddings, question graphs) for this test session."""
    return tmp_path_factory.mktemp("kgreason-cache")


@pytest.fixture(scope="session")
def default_graph_dir() -> Path:
    """The default graph (ConceptNet 4 + CN-100K + ATOMIC from the mirror), built once per machine.

    Kept in ``<kgreason cache>/test-graphs/`` keyed by the source and code checksums; a first build
    takes about 10 s on 2 cores.
    """
    return graph_helpers.default_graph(cache_dir() / "test-graphs")


@pytest.fixture(scope="session")
def small_graph_dir(default_graph_dir, tmp_path_factory) -> Path:
    """A few-thousand-node subset of the default graph around the first 40 CSQA dev questions."""
    return graph_helpers.small_graph(default_graph_dir, tmp_path_factory.mktemp("small-graph"))


def _overrides(graph_dir: Path, cache: Path) -> list[str]:
    return [f"graph.dir={graph_dir.parent}", f"graph.name={graph_dir.name}", f"data.cache_dir={cache}",
            "runtime.num_threads=2"]


@pytest.fixture(scope="session")
def small_graph_overrides(small_graph_dir, test_cache_dir) -> list[str]:
    """Config overrides that select the small graph and the session cache."""
    return _overrides(small_graph_dir, test_cache_dir)


@pytest.fixture(scope="session")
def default_graph_overrides(default_graph_dir, test_cache_dir) -> list[str]:
    """Config overrides that select the default graph and the session cache."""
    return _overrides(default_graph_dir, test_cache_dir)
