"""The relation schema shared by every graph source, the store and the model.

Forward relations come in three groups:

- the 17 merged ConceptNet relation types of KagNet (Lin et al. 2019), also used by MHGRN, QA-GNN
  and GreaseLM. ConceptNet 4, CN-100K and ConceptNet 5 relation names are mapped onto them with
  KagNet's merge map. A map entry marked ``reversed`` swaps head and tail, so ``HasA(car, wheel)``
  becomes ``partof(wheel, car)``;
- the ATOMIC if-then relations (the nine of ATOMIC 2019 and the five event relations that
  ATOMIC-2020 adds); the ATOMIC-2020 relations about physical objects map onto the ConceptNet types;
- ``context``, from the context node of a question graph to a concept grounded in the question.

Every forward relation ``r`` (id ``0 <= r < F``) has a reverse relation with id ``r + F``, so a
graph stores each edge in both directions and a message-passing layer can tell them apart.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

CONCEPTNET_RELATIONS: dict[str, str] = {
    "antonym": "{head} is the opposite of {tail}",
    "atlocation": "{head} is typically found at {tail}",
    "capableof": "{head} can {tail}",
    "causes": "{head} causes {tail}",
    "createdby": "{head} is created by {tail}",
    "isa": "{head} is a kind of {tail}",
    "desires": "{head} wants {tail}",
    "hassubevent": "{head} involves {tail}",
    "partof": "{head} is part of {tail}",
    "hascontext": "{head} is used in the context of {tail}",
    "hasproperty": "{head} is {tail}",
    "madeof": "{head} is made of {tail}",
    "notcapableof": "{head} cannot {tail}",
    "notdesires": "{head} does not want {tail}",
    "receivesaction": "{head} can be {tail}",
    "relatedto": "{head} is related to {tail}",
    "usedfor": "{head} is used for {tail}",
}
"""The 17 merged ConceptNet relation types, in KagNet's order, with a sentence template each."""

ATOMIC_RELATIONS: dict[str, str] = {
    "oEffect": "as a result of {head}, others {tail}",
    "oReact": "after {head}, others feel {tail}",
    "oWant": "after {head}, others want {tail}",
    "xAttr": "someone who does {head} is seen as {tail}",
    "xEffect": "as a result of {head}, PersonX {tail}",
    "xIntent": "PersonX does {head} intending {tail}",
    "xNeed": "before {head}, PersonX needs {tail}",
    "xReact": "after {head}, PersonX feels {tail}",
    "xWant": "after {head}, PersonX wants {tail}",
    "isAfter": "{head} happens after {tail}",
    "isBefore": "{head} happens before {tail}",
    "HinderedBy": "{head} can be hindered by {tail}",
    "isFilledBy": "the blank in {head} can be {tail}",
    "xReason": "{head} happens because {tail}",
}
"""ATOMIC 2019 (Sap et al. 2019) and ATOMIC-2020 (Hwang et al. 2021) event relations."""

CONTEXT_RELATION = "context"
CONTEXT_TEMPLATE = "the question \"{head}\" mentions {tail}"

REVERSE_SUFFIX = "_reverse"


@dataclass(frozen=True)
class RelationMapping:
    """The schema relation that one source relation name maps to."""

    relation: str
    """Forward relation name in the schema."""

    reversed: bool = False
    """True when the source edge (head, tail) becomes (tail, head)."""


def _merge_map() -> dict[str, RelationMapping]:
    """Source relation name (lower-case, no ``/r/``) -> schema relation.

    The ConceptNet part is KagNet's merge map; ``*`` in its file marks the reversed entries.
    """
    merged = {
        "atlocation": ["atlocation", "locatednear"],
        "capableof": ["capableof"],
        "causes": ["causes", "causesdesire", "*motivatedbygoal"],
        "createdby": ["createdby"],
        "desires": ["desires"],
        "antonym": ["antonym", "distinctfrom"],
        "hascontext": ["hascontext"],
        "hasproperty": ["hasproperty"],
        "hassubevent": ["hassubevent", "hasfirstsubevent", "haslastsubevent", "hasprerequisite", "entails",
                        "mannerof"],
        "isa": ["isa", "instanceof", "definedas"],
        "madeof": ["madeof"],
        "notcapableof": ["notcapableof"],
        "notdesires": ["notdesires"],
        "partof": ["partof", "*hasa"],
        "relatedto": ["relatedto", "similarto", "synonym"],
        "usedfor": ["usedfor"],
        "receivesaction": ["receivesaction"],
    }
    mapping = {}
    for relation, names in merged.items():
        for name in names:
            mapping[name.lstrip("*")] = RelationMapping(relation, reversed=name.startswith("*"))

    # ConceptNet 4 calls RelatedTo "ConceptuallyRelatedTo"; ConceptNet 5 renamed it on import.
    mapping["conceptuallyrelatedto"] = RelationMapping("relatedto")

    # ATOMIC-2020 relations about physical objects, onto the ConceptNet types they restate.
    # MadeUpOf(congregation, people) states that people are part of a congregation, hence reversed.
    mapping["objectuse"] = RelationMapping("usedfor")
    mapping["madeupof"] = RelationMapping("partof", reversed=True)

    for name in ATOMIC_RELATIONS:
        mapping[name.lower()] = RelationMapping(name)
    return mapping


class RelationSchema:
    """Relation ids, names and sentence templates, forward and reverse.

    ``relation_names[r]`` is the name of relation id ``r``; ids ``[0, num_forward)`` are the forward
    relations and ``r + num_forward`` is the reverse of ``r``.
    """

    def __init__(self) -> None:
        forward_templates = {**CONCEPTNET_RELATIONS, **ATOMIC_RELATIONS, CONTEXT_RELATION: CONTEXT_TEMPLATE}
        forward = list(forward_templates)
        self.num_forward = len(forward)
        self.relation_names: list[str] = forward + [name + REVERSE_SUFFIX for name in forward]
        self.num_relations = len(self.relation_names)
        self._templates = [forward_templates[name] for name in forward]
        self._ids = {name: index for index, name in enumerate(self.relation_names)}
        self._source_map = _merge_map()
        self.context_id = self._ids[CONTEXT_RELATION]
        self.conceptnet_ids = frozenset(self._ids[name] for name in CONCEPTNET_RELATIONS)
        self.atomic_ids = frozenset(self._ids[name] for name in ATOMIC_RELATIONS)

    def relation_id(self, name: str) -> int:
        """Return the id of a schema relation name such as ``atlocation`` or ``xIntent_reverse``."""
        try:
            return self._ids[name]
        except KeyError:
            raise KeyError(f"unknown relation {name!r}; known relations: {', '.join(self.relation_names)}") from None

    def reverse(self, relation_id: int) -> int:
        """Return the id of the relation that reads ``relation_id`` backwards."""
        if relation_id < self.num_forward:
            return relation_id + self.num_forward
        return relation_id - self.num_forward

    def is_reverse(self, relation_id: int) -> bool:
        return relation_id >= self.num_forward

    def template(self, relation_id: int) -> str:
        """Sentence template with ``{head}`` and ``{tail}`` for an edge head -> tail of this relation.

        A reverse edge u -> v is the forward edge v -> u, so its template swaps the placeholders.
        """
        if not 0 <= relation_id < self.num_relations:
            raise IndexError(f"relation id {relation_id} is outside [0, {self.num_relations})")
        if relation_id < self.num_forward:
            return self._templates[relation_id]
        forward = self._templates[relation_id - self.num_forward]
        return forward.replace("{head}", "\0").replace("{tail}", "{head}").replace("\0", "{tail}")

    def render(self, relation_id: int, head: str, tail: str) -> str:
        """Render the edge head -[relation]-> tail as a sentence."""
        return self.template(relation_id).format(head=head, tail=tail)

    def map_source_relation(self, name: str) -> tuple[int, bool] | None:
        """Map a relation name from a source file to (forward relation id, reversed), or None if unknown.

        Accepts ConceptNet URIs (``/r/IsA``), plain names in any case (``IsA``, ``isa``) and ATOMIC names.
        """
        key = name.strip()
        if key.startswith("/r/"):
            key = key[3:]
        mapping = self._source_map.get(key.lower())
        if mapping is None:
            return None
        return self._ids[mapping.relation], mapping.reversed

    def schema_hash(self) -> str:
        """Hex SHA-256 of the ordered relation names: two graphs with the same hash share relation ids."""
        return hashlib.sha256(json.dumps(self.relation_names).encode("utf-8")).hexdigest()

    def to_dict(self) -> dict:
        """Return the relation table written into each graph store."""
        return {
            "schema_hash": self.schema_hash(),
            "num_forward": self.num_forward,
            "relations": [
                {"id": index, "name": name, "template": self.template(index)}
                for index, name in enumerate(self.relation_names)
            ],
        }


DEFAULT_SCHEMA = RelationSchema()


def schema_hash() -> str:
    """Return the hash of ``DEFAULT_SCHEMA`` (stored in model checkpoints and graph stores)."""
    return DEFAULT_SCHEMA.schema_hash()
