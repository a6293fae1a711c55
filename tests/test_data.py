"""Dataset loaders on the real mirror files: exact counts, splits and the CoS-E join."""

import pytest

from kgreason.data import DataLocator, load_examples, load_openbook, to_hf_dataset
from kgreason.data.cose import read_cose
from kgreason.data.csqa import read_inhouse_ids
from kgreason.data.locator import FILES, default_mirror

pytestmark = pytest.mark.skipif(not default_mirror().is_dir(), reason="data mirror not found (set KGREASON_DATA)")


@pytest.fixture(scope="module")
def locator():
    return DataLocator(allow_download=False)


@pytest.mark.parametrize(
    ("dataset", "split", "count"),
    [
        ("csqa", "train", 9741),
        ("csqa", "dev", 1221),
        ("csqa", "test", 1140),
        ("csqa", "ih-train", 8500),
        ("csqa", "ih-dev", 1221),
        ("csqa", "ih-test", 1241),
        ("obqa", "train", 4957),
        ("obqa", "dev", 500),
        ("obqa", "test", 500),
    ],
)
def test_split_sizes(locator, dataset, split, count):
    examples = load_examples(dataset, split, locator)
    assert len(examples) == count
    assert {example.split for example in examples} == {split}
    assert {example.dataset for example in examples} == {dataset}


def test_inhouse_split_partitions_train(locator):
    train = {e.id for e in load_examples("csqa", "train", locator)}
    ih_train = {e.id for e in load_examples("csqa", "ih-train", locator)}
    ih_test = {e.id for e in load_examples("csqa", "ih-test", locator)}
    assert ih_train | ih_test == train
    assert not ih_train & ih_test
    assert ih_train == set(read_inhouse_ids(locator))


def test_ih_dev_is_official_dev(locator):
    dev = [e.id for e in load_examples("csqa", "dev", locator)]
    ih_dev = [e.id for e in load_examples("csqa", "ih-dev", locator)]
    assert ih_dev == dev


def test_csqa_example_fields(locator):
    example = load_examples("csqa", "train", locator)[0]
    assert example.id == "075e483d21c29a511267ef62bedc0461"
    assert example.labels == ["A", "B", "C", "D", "E"]
    assert example.choice_texts[3] == "yell at"
    assert example.answer == "A"
    assert example.answer_text == "ignore"
    assert example.concept == "punishing"
    assert example.explanation is not None


def test_csqa_test_has_no_answers(locator):
    examples = load_examples("csqa", "test", locator)
    assert all(example.answer is None for example in examples)
    assert all(example.explanation is None for example in examples)


def test_every_cose_id_is_csqa_id(locator):
    for split in ("train", "dev"):
        csqa_ids = {e.id for e in load_examples("csqa", split, locator)}
        cose_ids = set(read_cose(locator, split))
        assert cose_ids <= csqa_ids
        assert len(cose_ids) == len(csqa_ids)


def test_explanations_attached_to_every_ih_question(locator):
    for split in ("ih-train", "ih-test", "ih-dev"):
        examples = load_examples("csqa", split, locator)
        assert all(example.explanation for example in examples), split


def test_obqa_with_facts(locator):
    plain = load_examples("obqa", "test", locator)
    with_facts = load_examples("obqa", "test", locator, with_facts=True)
    assert [e.id for e in plain] == [e.id for e in with_facts]
    assert all(example.fact for example in with_facts)
    assert all(example.fact is None for example in plain)
    assert with_facts[0].id == "8-343"
    assert with_facts[0].fact == "using less resources usually causes money to be saved"


def test_obqa_has_four_choices(locator):
    examples = load_examples("obqa", "dev", locator)
    assert all(len(example.choices) == 4 for example in examples)
    assert {example.answer for example in examples} == {"A", "B", "C", "D"}


def test_openbook_facts(locator):
    facts = load_openbook(locator)
    assert len(facts) == 1326
    assert facts[0] == "A bee is a pollinating animal"


def test_max_examples_limits(locator):
    assert len(load_examples("csqa", "ih-dev", locator, max_examples=7)) == 7


def test_hf_dataset_export(locator):
    examples = load_examples("obqa", "dev", locator, max_examples=5)
    dataset = to_hf_dataset(examples)
    assert dataset.num_rows == 5
    assert dataset[0]["id"] == examples[0].id
    assert dataset[0]["choice_texts"] == examples[0].choice_texts


def test_mirror_files_match_checksums(locator):
    from kgreason.io import sha256_file

    for key, remote in FILES.items():
        path = locator.path(key)
        assert sha256_file(path) == remote.sha256, key
