"""``python -m kgreason.graph`` build, stats and ground, called as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kgreason.cli import run_cli
from kgreason.graph.__main__ import main
from kgreason.runtime import project_root

TOY = "IsA\tdog\tanimal\nAtLocation\tjellyfish\tocean\nSymbolOf\tdove\tpeace\n"


@pytest.fixture()
def toy_file(tmp_path) -> Path:
    path = tmp_path / "toy.txt"
    path.write_text(TOY, encoding="utf-8")
    return path


def test_build_then_stats(toy_file, tmp_path, capsys):
    overrides = [f"graph.dir={tmp_path / 'graphs'}", "graph.name=toy", "-q"]
    assert main(["build", "--cn100k", str(toy_file), *overrides]) == 0
    output = capsys.readouterr().out
    assert f"built {tmp_path / 'graphs' / 'toy'}" in output
    assert "4 nodes, 2 edges" in output
    assert "cn100k:SymbolOf 1" in output

    meta = json.loads((tmp_path / "graphs" / "toy" / "meta.json").read_text())
    assert meta["command"] == f"python -m kgreason.graph build --cn100k {toy_file} graph.dir={tmp_path / 'graphs'} " \
                              "graph.name=toy -q"

    assert main(["build", "--cn100k", str(toy_file), *overrides]) == 0
    assert "is up to date" in capsys.readouterr().out
    assert main(["build", "--cn100k", str(toy_file), "--force", *overrides]) == 0
    assert "built" in capsys.readouterr().out

    assert main(["stats", *overrides]) == 0
    output = capsys.readouterr().out
    assert "atlocation" in output
    assert "isa" in output
    assert "cn100k" in output


def run_and_capture(argv, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, argv)
    return exit_info.value.code, capsys.readouterr().err


def test_stats_on_missing_graph(tmp_path, capsys):
    status, error = run_and_capture(["stats", f"graph.dir={tmp_path}", "graph.name=none", "-q"], capsys)
    assert status == 2
    assert error.strip() == (f"error: graph folder {tmp_path / 'none'} is not found; build it with: "
                             f"python -m kgreason.graph build graph.dir={tmp_path} graph.name=none")


def test_build_with_missing_file(tmp_path, capsys):
    status, error = run_and_capture(["build", "--atomic", str(tmp_path / "absent.csv"), f"graph.dir={tmp_path}"],
                                    capsys)
    assert status == 2
    assert f"graph source file(s) not found: {tmp_path / 'absent.csv'}" in error
    assert "Traceback" not in error


def test_build_with_unknown_mirror_source(tmp_path, capsys):
    status, error = run_and_capture(["build", f"graph.dir={tmp_path}", "graph.sources=[wordnet]"], capsys)
    assert status == 2
    assert "unknown graph source 'wordnet' in graph.sources" in error


def test_ground_writes_then_reuses_shards(small_graph_overrides, tmp_path, capsys):
    arguments = ["ground", "--dataset", "csqa", "--split", "dev", "--shard-size", "4",
                 *small_graph_overrides, f"data.cache_dir={tmp_path}", "data.max_examples=6", "-q"]
    assert main(arguments) == 0
    output = capsys.readouterr().out
    assert "csqa dev: 6 questions" in output
    assert "2 shards written, 0 reused" in output
    assert "choices with one: 100.0%" in output

    assert main(arguments) == 0
    assert "0 shards written, 2 reused" in capsys.readouterr().out


def test_ground_rejects_bad_shard_size(small_graph_overrides, capsys):
    status, error = run_and_capture(["ground", "--dataset", "obqa", "--split", "test", "--shard-size", "0",
                                     *small_graph_overrides, "-q"], capsys)
    assert status == 2
    assert "--shard-size must be at least 1, got 0" in error


@pytest.mark.slow
def test_default_build_and_stats_on_mirror(tmp_path):
    environment = {**os.environ, "KGREASON_CACHE": str(tmp_path / "cache")}
    command = [sys.executable, "-m", "kgreason.graph"]
    overrides = [f"graph.dir={tmp_path}", "-q"]
    built = subprocess.run([*command, "build", *overrides], cwd=project_root(), env=environment,
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    stats = subprocess.run([*command, "stats", *overrides], cwd=project_root(), env=environment,
                           capture_output=True, text=True, timeout=120)
    assert stats.returncode == 0, stats.stderr

    meta = json.loads((tmp_path / "default" / "meta.json").read_text())
    counts = meta["counts"]
    assert counts["nodes"] > 300_000
    assert counts["edges"] > 600_000
    assert set(counts["edges_per_source"]) == {"conceptnet4", "cn100k", "atomic2019", "atomic2020"}
    assert len(meta["sources"]) == 7
    assert f"{counts['nodes']:,} nodes, {counts['edges']:,} edges" in stats.stdout
    for relation in ("isa", "atlocation", "xIntent", "HinderedBy"):
        assert f"{relation} " in stats.stdout
