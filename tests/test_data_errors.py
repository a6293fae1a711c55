"""Bad dataset input: each case names the file, line and field, strict by default, lenient on request."""

import json
import os
import shutil

import pytest

from kgreason.data import DataError, DataLocator, load_examples
from kgreason.data.locator import FILES, default_mirror
from kgreason.io import atomic_write

GOOD = {
    "answerKey": "A",
    "id": "q1",
    "question": {
        "question_concept": "milk",
        "choices": [{"label": label, "text": f"choice {label}"} for label in "ABCDE"],
        "stem": "Where is milk kept cold?",
    },
}


def record(**changes):
    value = json.loads(json.dumps(GOOD))
    for path, new in changes.items():
        node = value
        parts = path.split("__")
        for part in parts[:-1]:
            node = node[part]
        if new is None:
            del node[parts[-1]]
        else:
            node[parts[-1]] = new
    return value


def write_lines(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join((line if isinstance(line, bytes) else line.encode()) + b"\n" for line in lines))


@pytest.fixture
def mirror(tmp_path):
    """A mirror folder whose CSQA train file the test fills in."""
    return tmp_path / "mirror"


def load_train(mirror, lines, strict=True):
    write_lines(mirror / FILES["csqa/train"].relative_path, lines)
    locator = DataLocator(root=mirror, cache=mirror.parent / "cache", allow_download=False)
    from kgreason.data.csqa import read_official

    return read_official(locator, "train", strict=strict)


def second(value):
    """Two good records around the case under test, so the bad one sits on line 2."""
    return [json.dumps(record(id="q0")), value, json.dumps(record(id="q2"))]


def test_good_records_load(mirror):
    examples = load_train(mirror, second(json.dumps(record())))
    assert [e.id for e in examples] == ["q0", "q1", "q2"]


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ('{"id": "q1", "question": ', "(line)"),
        ("[1, 2, 3]", "(line)"),
        (json.dumps(record(id=None)), "id"),
        (json.dumps(record(question__stem=None)), "question.stem"),
        (json.dumps(record(question__stem="   ")), "question.stem"),
        (json.dumps(record(question__choices=None)), "question.choices"),
        (json.dumps(record(answerKey=None)), "answerKey"),
        (json.dumps(record(answerKey="F")), "answerKey"),
        (json.dumps(record(id=17)), "id"),
        (json.dumps(record(id="q0")), "id"),
    ],
    ids=[
        "malformed-json", "not-an-object", "missing-id", "missing-stem", "empty-stem", "missing-choices",
        "missing-answer", "answer-not-a-label", "id-not-string", "duplicate-id",
    ],
)
def test_bad_record_names_file_line_field(mirror, line, field):
    with pytest.raises(DataError) as error:
        load_train(mirror, second(line))
    message = str(error.value)
    assert "train_rand_split.jsonl:2:" in message
    assert f"field {field!r}" in message
    assert "data.strict=false" in message
    assert error.value.line == 2
    assert error.value.field == field


def test_wrong_choice_count(mirror):
    bad = record()
    bad["question"]["choices"] = bad["question"]["choices"][:3]
    with pytest.raises(DataError, match="expected 5 choices, got 3"):
        load_train(mirror, second(json.dumps(bad)))


def test_duplicate_labels(mirror):
    bad = record()
    bad["question"]["choices"][1]["label"] = "A"
    with pytest.raises(DataError, match="duplicate labels"):
        load_train(mirror, second(json.dumps(bad)))


def test_lenient_mode_skips_and_counts(mirror, caplog):
    lines = second('{"broken') + [json.dumps(record(id="q3", answerKey="Z"))]
    with caplog.at_level("WARNING"):
        examples = load_train(mirror, lines, strict=False)
    assert [e.id for e in examples] == ["q0", "q2"]
    assert "skipped 2 bad records" in caplog.text


def test_empty_file(mirror):
    with pytest.raises(DataError, match="file is empty"):
        load_train(mirror, [])


def test_blank_lines_only(mirror):
    with pytest.raises(DataError, match="holds no records"):
        load_train(mirror, ["", "   "])


def test_not_utf8_names_line(mirror):
    latin1 = json.dumps(record(question__stem="Où est le café?"), ensure_ascii=False).encode("latin-1")
    with pytest.raises(DataError) as error:
        load_train(mirror, second(latin1))
    assert "train_rand_split.jsonl:2: not valid UTF-8" in str(error.value)


def test_every_record_bad_in_lenient_mode(mirror):
    with pytest.raises(DataError, match="every record is malformed"):
        load_train(mirror, ["{", "["], strict=False)


@pytest.mark.skipif(not default_mirror().is_dir(), reason="data mirror not found")
def test_mirror_missing_one_file(tmp_path):
    """A copy of the mirror without the CSQA dev file: the error names the file and where to put it."""
    mirror = tmp_path / "mirror"
    for folder in ("csqa", "csqa-extras", "cos-e"):
        shutil.copytree(default_mirror() / folder, mirror / folder)
    os.remove(mirror / "csqa" / "dev_rand_split.jsonl")
    locator = DataLocator(root=mirror, cache=tmp_path / "cache", allow_download=False)
    assert len(load_examples("csqa", "train", locator)) == 9741
    with pytest.raises(DataError) as error:
        load_examples("csqa", "dev", locator)
    message = str(error.value)
    assert "csqa/dev" in message
    assert str(mirror / "csqa" / "dev_rand_split.jsonl") in message
    assert "KGREASON_DATA" in message


def test_unknown_split_lists_choices():
    with pytest.raises(DataError, match="ih-train"):
        load_examples("csqa", "validation", DataLocator(allow_download=False))


def test_unknown_dataset():
    with pytest.raises(DataError, match="unknown dataset 'siqa'"):
        load_examples("siqa", "dev", DataLocator(allow_download=False))


def test_atomic_write_keeps_old_file_on_error(tmp_path):
    target = tmp_path / "out.jsonl"
    target.write_text("old\n")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as stream:
            stream.write("half of the new con")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_atomic_write_replaces_on_success(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_write(target) as stream:
        stream.write("new")
    assert target.read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]
