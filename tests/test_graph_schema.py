"""The relation schema and the concept normaliser."""

from __future__ import annotations

import pytest

from kgreason.data.locator import default_mirror
from kgreason.graph.normalize import normalize, normalize_tokens
from kgreason.graph.schema import CONCEPTNET_RELATIONS, DEFAULT_SCHEMA, RelationSchema, schema_hash

META = default_mirror() / "conceptnet-meta"


def test_merged_relations_match_kagnet_file():
    listed = (META / "kagnet_merged_relations17.txt").read_text().split()
    assert list(CONCEPTNET_RELATIONS) == listed


def test_merge_map_matches_kagnet_file():
    for line in (META / "kagnet_merge_relation.txt").read_text().split():
        names = line.split("/")
        target = DEFAULT_SCHEMA.relation_id(names[0])
        for name in names:
            assert DEFAULT_SCHEMA.map_source_relation(name.lstrip("*")) == (target, name.startswith("*")), name


def test_every_conceptnet5_relation_maps_or_is_known_unmapped():
    unmapped = set()
    for line in (META / "kagnet_relation2id_cn5.txt").read_text().splitlines()[1:]:
        uri = line.split("\t")[0]
        if DEFAULT_SCHEMA.map_source_relation(uri) is None:
            unmapped.add(uri)
    assert unmapped == {
        "/r/DerivedFrom", "/r/EtymologicallyRelatedTo", "/r/FormOf", "/r/NotHasProperty", "/r/SymbolOf",
        *(f"/r/dbpedia/{name}" for name in ("capital", "field", "genre", "genus", "influencedBy", "knownFor",
                                             "language", "leader", "occupation", "product")),
    }


def test_source_relation_mapping():
    schema = DEFAULT_SCHEMA
    assert schema.map_source_relation("/r/IsA") == (schema.relation_id("isa"), False)
    assert schema.map_source_relation("HasA") == (schema.relation_id("partof"), True)
    assert schema.map_source_relation("MotivatedByGoal") == (schema.relation_id("causes"), True)
    assert schema.map_source_relation("ConceptuallyRelatedTo") == (schema.relation_id("relatedto"), False)
    assert schema.map_source_relation("NotDesires") == (schema.relation_id("notdesires"), False)
    assert schema.map_source_relation("xIntent") == (schema.relation_id("xIntent"), False)
    assert schema.map_source_relation("MadeUpOf") == (schema.relation_id("partof"), True)
    assert schema.map_source_relation("ObjectUse") == (schema.relation_id("usedfor"), False)
    assert schema.map_source_relation("SimilarSize") is None


def test_relation_ids_and_reverse():
    schema = DEFAULT_SCHEMA
    assert schema.num_forward == 17 + 14 + 1
    assert schema.num_relations == 2 * schema.num_forward
    assert len(set(schema.relation_names)) == schema.num_relations
    for relation in range(schema.num_relations):
        assert schema.reverse(schema.reverse(relation)) == relation
        assert schema.is_reverse(relation) == (relation >= schema.num_forward)
    assert schema.relation_names[schema.reverse(schema.context_id)] == "context_reverse"


def test_templates_swap_for_reverse():
    schema = DEFAULT_SCHEMA
    atlocation = schema.relation_id("atlocation")
    assert schema.render(atlocation, "jellyfish", "ocean") == "jellyfish is typically found at ocean"
    assert schema.render(schema.reverse(atlocation), "ocean", "jellyfish") == "jellyfish is typically found at ocean"
    for relation in range(schema.num_relations):
        template = schema.template(relation)
        assert "{head}" in template
        assert "{tail}" in template
    with pytest.raises(IndexError):
        schema.template(schema.num_relations)


def test_schema_hash_is_stable():
    # A change here changes relation ids: checkpoints and graph stores made before must be rebuilt.
    assert schema_hash() == RelationSchema().schema_hash()
    assert schema_hash() == "79fa186243018308b4cc61f771d639ce1f18994c13fc5a615b99e73b12a995d7"


@pytest.mark.parametrize(("text", "key"), [
    ("Playing on the ice", "play ice"),
    ("singing", "sing"),
    ("gone", "go"),
    ("play on ice", "play ice"),
    ("Where would you most likely find a jellyfish?", "most likely find jellyfish"),
    ("The man's dogs", "man dog"),
    ("don't eat", "not eat"),
    ("can't", "not"),
    ("PersonX plays a ___ in the war", "personx play war"),
    ("to participate", "participate"),
    ("Café", "cafe"),
    ("yo-yo", "yo yo"),
    ("children ran", "child run"),
    ("pick up", "pick up"),
    ("the", ""),
    ("", ""),
])
def test_normalize(text, key):
    assert normalize(text) == key


def test_normalize_is_idempotent_on_keys():
    for text in ["computer hacker", "price gold", "play ice", "go store", "not eat"]:
        assert normalize(normalize(text)) == normalize(text)
    assert normalize_tokens("Going to the STORE") == ["go", "store"]
