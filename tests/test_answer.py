"""The answer command with the shipped model on real questions, and every kind of bad input."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kgreason import answer
from kgreason.model.predictor import DEFAULT_MODEL_DIR
from kgreason.questions import MAX_QUESTION_CHARS

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "The sanctions against the school were a punishing blow, and they seemed to what the efforts the school had made to change?"
CHOICES = "ignore|enforce|authoritarian|yell at|avoid"

pytestmark = pytest.mark.skipif(not (DEFAULT_MODEL_DIR / "checkpoint.json").is_file(),
                                reason="the shipped default model is not installed")


def run_answer(capsys, *args):
    """Run the answer command in-process; returns (exit status, stdout, stderr)."""
    try:
        status = answer.main(list(args))
    except SystemExit as exit_:
        status = exit_.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def as_json(output):
    return [json.loads(line) for line in output.splitlines() if line.strip()]


@pytest.mark.slow
def test_real_question_returns_a_choice(capsys, default_graph_overrides):
    status, output, _ = run_answer(capsys, QUESTION, "--choices", CHOICES, *default_graph_overrides)
    assert status == 0
    answer_line = next(line for line in output.splitlines() if line.startswith("Answer: "))
    assert answer_line[len("Answer: "):] in CHOICES.split("|")
    assert output.count("%") == 5


@pytest.mark.slow
def test_json_output_has_every_field(capsys, default_graph_overrides):
    status, output, _ = run_answer(capsys, QUESTION, "--choices", CHOICES, "--json", *default_graph_overrides)
    assert status == 0
    (result,) = as_json(output)
    for key in ("id", "question", "choices", "answer", "label", "probabilities", "choice_scores",
                "question_concepts", "choice_concepts", "num_nodes", "latent_norms", "seconds"):
        assert key in result, key
    assert result["answer"] in result["choices"]
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
    assert result["num_nodes"] > 1
    assert len(result["latent_norms"]) == 4
    assert "school" in result["question_concepts"]
    assert "punish" in result["question_concepts"]


@pytest.mark.slow
def test_inline_choices_and_explain(capsys, default_graph_overrides):
    question = "Where would you most likely find a jellyfish? A) ocean B) desert C) attic"
    status, output, _ = run_answer(capsys, question, "--explain", "--json", *default_graph_overrides)
    assert status == 0
    (result,) = as_json(output)
    assert result["choices"] == ["ocean", "desert", "attic"]
    explanation = result["explanation"]
    assert "jellyfish" in explanation["question_concepts"]
    assert explanation["choice_concepts"] == [["ocean"], ["desert"], ["attic"]]
    assert len(explanation["latents"]) == 4
    assert all(len(latent["explanations"]) == 3 for latent in explanation["latents"])
    if result["answer"] == "ocean":
        assert any("jellyfish" in path["text"] and "ocean" in path["text"] for path in explanation["paths"])


@pytest.mark.slow
def test_batch_from_stdin_with_bad_lines(capsys, monkeypatch, default_graph_overrides):
    """One good question, a free-form one, an emoji-only one, a 10,000-character one and two bad lines."""
    lines = [
        json.dumps({"id": "good", "question": "What do people use to cut paper?", "choices": ["scissors", "spoon"]}),
        "Where do fish live?",
        "🙂🙂🙂 🎉",
        "Why? " + "very " * 2000 + "long A) yes B) no",
        '{"question": ',
        json.dumps({"id": "dup", "question": "Pick one", "choices": ["red", "Red"]}),
    ]
    monkeypatch.setattr(sys, "stdin", __import__("io").StringIO("\n".join(lines)))
    status, output, _ = run_answer(capsys, "-", "--json", "--max-new-tokens", "8", *default_graph_overrides)
    results = as_json(output)
    assert status == 1
    assert len(results) == 6

    good, free_form, emoji, long_question, malformed, duplicated = results
    assert good["id"] == "good"
    assert good["answer"] in ("scissors", "spoon")
    assert free_form["choices"] == []
    assert free_form["answer"].strip()
    assert "emoji" in emoji["warning"]
    assert emoji["question_concepts"] == []
    assert len(long_question["question"]) <= MAX_QUESTION_CHARS
    assert "malformed JSON" in malformed["error"]
    assert "duplicate choice" in duplicated["error"]


@pytest.mark.slow
def test_no_grounded_concept_answers_and_says_so(capsys, default_graph_overrides):
    status, output, _ = run_answer(capsys, "Qwxz vbnm?", "--choices", "zzyzx|qqqp", "--explain", "--json",
                                   *default_graph_overrides)
    assert status == 0
    (result,) = as_json(output)
    assert result["answer"] in ("zzyzx", "qqqp")
    assert result["question_concepts"] == []
    assert any("no concept" in note for note in result["explanation"]["notes"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["   "], "the question is empty"),
        ([""], "the question is empty"),
        (["Which?", "--choices", "only"], "only one choice given"),
        (["Which?", "--choices", "red|blue|Red"], "duplicate choice"),
        (["Which?", "--choices", "red||blue"], "empty choice"),
        ([], "no question given"),
        (["A) red B) blue"], "no question before them"),
        (["Which? A) red B) blue", "--choices", "x|y"], "inline choices"),
    ],
    ids=["whitespace", "empty", "single-choice", "duplicate-choices", "empty-choice", "no-question",
         "choices-without-question", "inline-and-flag"],
)
def test_bad_question_rejected_before_loading(capsys, args, message):
    from kgreason.errors import KgreasonError

    with pytest.raises(KgreasonError, match=message):
        answer.main(args)


def test_json_request_field_types():
    from kgreason.questions import QuestionError, make_example

    with pytest.raises(QuestionError, match="choices must be a list of strings"):
        make_example("Which?", "bad")
    with pytest.raises(QuestionError, match="choices must be a list of strings"):
        make_example("Which?", ["a", 2])
    with pytest.raises(QuestionError, match="question must be text"):
        make_example(42)
    assert make_example("Which?", ["a", "b"], 7).id == "7"


def test_duplicate_choice_message():
    from kgreason.questions import QuestionError, check_choices

    with pytest.raises(QuestionError) as exact:
        check_choices(["cat", "cat", "dog"])
    assert str(exact.value).startswith("duplicate choice 'cat';")
    with pytest.raises(QuestionError, match="the same as 'Cat' ignoring case"):
        check_choices(["Cat", "cat"])


@pytest.mark.parametrize(
    ("question", "expected"),
    [("Where does an octopus live?", None), ("¿Dónde vive el pulpo?", "letters outside English (ó)"),
     ("🙂🙂🙂", "emoji or symbols only"), ("章鱼住在哪里?", "no Latin letters")],
    ids=["english", "spanish", "emoji", "chinese"],
)
def test_language_warnings(question, expected):
    from kgreason.questions import describe_language_issue

    warning = describe_language_issue(question)
    if expected is None:
        assert warning is None
    else:
        assert expected in warning


def test_cuda_device_without_cuda(monkeypatch):
    import torch

    from kgreason.errors import KgreasonError
    from kgreason.runtime import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(KgreasonError, match="CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(KgreasonError, match="'gpu' is not a device"):
        resolve_device("gpu")


def test_repair_hint_per_checkpoint(tmp_path):
    from kgreason.model.checkpoint import repair_hint

    assert "git checkout -- kgreason/resources/default_model" in repair_hint(DEFAULT_MODEL_DIR)
    assert "python -m kgreason.train" in repair_hint(tmp_path)


def copy_checkpoint(tmp_path, **changes):
    folder = tmp_path / "checkpoint"
    shutil.copytree(DEFAULT_MODEL_DIR, folder)
    metadata = json.loads((folder / "checkpoint.json").read_text())
    metadata.update(changes)
    (folder / "checkpoint.json").write_text(json.dumps(metadata))
    return folder


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"backbone_id": "other-decoder@0123456789abcdef"}, ["other-decoder@0123456789abcdef", "smollm2"]),
        ({"schema_hash": "f" * 64}, ["f" * 12, "79fa18624301"]),
    ],
    ids=["backbone", "schema"],
)
def test_mismatched_checkpoint_names_both_sides(tmp_path, changes, expected, default_graph_overrides):
    from kgreason.errors import KgreasonError

    folder = copy_checkpoint(tmp_path, **changes)
    with pytest.raises(KgreasonError) as error:
        answer.main(["Which?", "--choices", "a|b", "--checkpoint", str(folder), *default_graph_overrides])
    for text in expected:
        assert text in str(error.value)


def test_missing_checkpoint_named(tmp_path):
    from kgreason.errors import KgreasonError

    missing = tmp_path / "nowhere"
    with pytest.raises(KgreasonError, match=str(missing)):
        answer.main(["Which?", "--choices", "a|b", "--checkpoint", str(missing)])


def test_corrupt_checkpoint_named(tmp_path, default_graph_overrides):
    from kgreason.errors import KgreasonError

    folder = copy_checkpoint(tmp_path)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(KgreasonError, match="model.safetensors"):
        answer.main(["Which?", "--choices", "a|b", "--checkpoint", str(folder), *default_graph_overrides])


def test_corrupt_graph_names_rebuild_command(tmp_path, default_graph_dir, test_cache_dir):
    from kgreason.errors import KgreasonError

    graph = tmp_path / "graphs" / "default"
    shutil.copytree(default_graph_dir, graph)
    (graph / ".verified.json").unlink(missing_ok=True)
    indices = graph / "indices.npy"
    indices.write_bytes(indices.read_bytes()[:-100])
    overrides = [f"graph.dir={graph.parent}", "graph.name=default", f"data.cache_dir={test_cache_dir}"]
    with pytest.raises(KgreasonError) as error:
        answer.main(["Which?", "--choices", "a|b", *overrides])
    message = str(error.value)
    assert str(graph) in message
    assert "python -m kgreason.graph build" in message


def test_errors_print_one_line_without_traceback():
    result = subprocess.run([sys.executable, "-m", "kgreason.answer", "   "], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: the question is empty")
