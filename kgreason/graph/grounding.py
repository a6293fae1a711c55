"""Grounding: find the graph concepts that a question or an answer choice mentions.

Text is normalised with the same function as the node keys (``kgreason.graph.normalize``), so the
match is an exact dictionary lookup. Scanning left to right, each position takes the longest n-gram
(at most ``max_ngram`` words) that is a node key, and the scan continues after it. A position where
no n-gram matches is skipped. Stop words are already gone, so a choice gets at least one concept whenever one
of its content words is a node on its own, and "play on the ice" matches the node "play ice" in
one piece instead of as "play" and "ice".
"""

from __future__ import annotations

from dataclasses import dataclass

from kgreason.graph.normalize import normalize_tokens


@dataclass(frozen=True)
class Grounding:
    """The concepts found in one text, in order of first mention."""

    node_ids: tuple[int, ...]
    keys: tuple[str, ...]
    """The matched normalised n-grams, one per node id."""

    tokens: tuple[str, ...]
    """The normalised content words of the text."""


class Grounder:
    """Longest n-gram matcher over the node keys of a graph store."""

    def __init__(self, key_to_id: dict[str, int], max_ngram: int = 4):
        if max_ngram < 1:
            raise ValueError(f"max_ngram must be at least 1, got {max_ngram}")
        self.key_to_id = key_to_id
        self.max_ngram = max_ngram

    def ground(self, text: str) -> Grounding:
        """Find the concepts mentioned in ``text``, each once, in order of first mention."""
        tokens = normalize_tokens(text)
        lookup = self.key_to_id.get
        found: dict[int, str] = {}

        position = 0
        while position < len(tokens):
            longest = min(self.max_ngram, len(tokens) - position)
            for length in range(longest, 0, -1):
                key = " ".join(tokens[position:position + length])
                node = lookup(key)
                if node is not None:
                    found.setdefault(node, key)
                    position += length
                    break
            else:
                position += 1

        return Grounding(tuple(found), tuple(found.values()), tuple(tokens))
