"""Every entry point starts, prints help, and reports user errors in one line without a traceback."""

import subprocess
import sys
from pathlib import Path

import pytest

from kgreason.data.locator import default_mirror

ROOT = Path(__file__).resolve().parent.parent
MODULES = ["kgreason", "kgreason.answer", "kgreason.evaluate", "kgreason.train", "kgreason.graph",
           "kgreason.data", "kgreason.plot"]


def run(*args, timeout=300):
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize("module", MODULES)
def test_help(module):
    result = run("-m", module, "--help")
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout.lower()


@pytest.mark.skipif(not default_mirror().is_dir(), reason="data mirror not found")
def test_data_stats_prints_counts():
    result = run("-m", "kgreason.data", "stats", "--quiet")
    assert result.returncode == 0, result.stderr
    for count in ("9,741", "1,221", "1,140", "8,500", "1,241", "4,957", "1,326"):
        assert count in result.stdout


def test_bad_override_is_one_line_error():
    result = run("-m", "kgreason.data", "stats", "model.num_latents=many")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "model.num_latents" in result.stderr
    assert result.stderr.strip().startswith("error:")


def test_no_command_is_an_error():
    result = run("-m", "kgreason")
    assert result.returncode == 2
    assert "no command given" in result.stderr


def test_subcommand_error_one_line():
    result = run("-m", "kgreason", "answer", "   ")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == 'error: the question is empty; pass a question such as "Where would you find a jellyfish?"'


def test_unknown_command():
    result = run("-m", "kgreason", "fly")
    assert result.returncode == 2
    assert "unknown command 'fly'" in result.stderr


def test_export_writes_jsonl(tmp_path):
    if not default_mirror().is_dir():
        pytest.skip("data mirror not found")
    output = tmp_path / "dev.jsonl"
    result = run("-m", "kgreason.data", "export", "--dataset", "obqa", "--split", "dev", "--output", str(output), "-q")
    assert result.returncode == 0, result.stderr
    assert len(output.read_text().splitlines()) == 500
