"""Grounding real CSQA and OBQA questions in the default graph built from the mirror."""

from __future__ import annotations

import pytest

from kgreason.data import load_examples
from kgreason.graph.grounding import Grounder
from kgreason.graph.store import GraphStore


@pytest.fixture(scope="module")
def default_store(default_graph_dir) -> GraphStore:
    return GraphStore.open(default_graph_dir)


@pytest.fixture(scope="module")
def grounder(default_store) -> Grounder:
    return Grounder(default_store.key_to_id, max_ngram=4)


@pytest.fixture(scope="module")
def csqa_dev():
    return {example.id: example for example in load_examples("csqa", "dev")}


# (CSQA dev id, concepts the question must ground, concepts per choice), checked by hand.
CASES = [
    ("1afa02df02c908a558b4036e80242fac",
     {"revolve door", "travel", "security measure"},
     [["bank"], ["library"], ["department store"], ["mall"], ["new york"]]),
    ("e68fb2448fd74e402aae9982aa76e527",
     {"hamburger"},
     [["fast food restaurant"], ["pizza"], ["ground up dead cow"], ["mouth"], ["cow"]]),
    ("1d24f406b6828492040b405d3f35119c",
     {"play guitar"},
     [["cry"], ["hear sound"], ["sing"], ["arthritis"], ["make music"]]),
    ("81eb4b2ee66edd8bc91ee944697c4e9f",
     {"harmony", "world"},
     [["take time"], ["make noise"], ["make war"], ["make peace"], ["make haste"]]),
]


@pytest.mark.parametrize(("question_id", "question_concepts", "choice_concepts"), CASES)
def test_csqa_question_concepts(grounder, csqa_dev, question_id, question_concepts, choice_concepts):
    example = csqa_dev[question_id]
    found = set(grounder.ground(example.question).keys)
    assert question_concepts <= found
    assert [list(grounder.ground(choice).keys) for choice in example.choice_texts] == choice_concepts


def test_longest_match_wins(grounder):
    grounding = grounder.ground("a revolving door at the department store")
    assert grounding.keys == ("revolve door", "department store")
    assert grounding.tokens == ("revolve", "door", "department", "store")


def test_grounding_keeps_first_mention_once(grounder, default_store):
    grounding = grounder.ground("dog; zebra; dogs")
    assert grounding.keys == ("dog", "zebra")
    assert grounding.node_ids[0] == default_store.lookup("dog")


def test_stop_words_alone_ground_nothing(grounder):
    assert grounder.ground("What is it that they would have?").node_ids == ()


@pytest.mark.slow
@pytest.mark.parametrize(("dataset", "split", "minimum"), [("csqa", "dev", 0.95), ("obqa", "test", 0.95)])
def test_choice_coverage(grounder, dataset, split, minimum):
    examples = load_examples(dataset, split)
    choices = [choice for example in examples for choice in example.choice_texts]
    covered = sum(1 for choice in choices if grounder.ground(choice).node_ids)
    questions = sum(1 for example in examples if grounder.ground(example.question).node_ids)
    assert covered / len(choices) >= minimum
    assert questions / len(examples) >= 0.99


def test_grounder_rejects_bad_ngram(default_store):
    with pytest.raises(ValueError, match="max_ngram must be at least 1"):
        Grounder(default_store.key_to_id, max_ngram=0)
