"""The one concept normaliser, applied to graph node names and to question text alike.

``normalize("Playing on the ice")`` returns ``"play ice"``: lower-case, accents stripped, split into
words, each word lemmatised offline (simplemma, checked against lemminflect's dictionary), and
articles, pronouns, auxiliaries, common prepositions and other stop words removed. ConceptNet 4
stores its concepts already in this shape (``build``, ``price gold``), CN-100K keeps surface
phrases (``play on ice``) and ATOMIC writes sentences. After normalisation, all three meet each
other and the words of a question.

Changing the stop words or the lemmatiser changes every node key, so ``NORMALISER_VERSION`` is
written into each graph store and a store built with another version must be rebuilt.
"""

from __future__ import annotations

import re
import unicodedata

import lemminflect
import simplemma

NORMALISER_VERSION = 2

STOP_WORDS = frozenset(
    """
    a an the this that these those some each all such same
    i me my mine myself we us our ours ourselves you your yours yourself yourselves he him his himself
    she her hers herself it its itself they them their theirs themselves
    be am is are was were been being do does did doing have has had having
    can could will would shall should may might must
    what which who whom whose where when why how
    of to in on at by for with from into onto upon about as than
    and or but if so nor yet whether while
    there here very too also more
    s t d ll m re ve
    """.split()
)
"""Words never part of a concept key.

Negations (``not``, ``no``), particles of phrasal verbs (``up``, ``out``, ``off``) and spatial or
temporal prepositions (``under``, ``before``, ``near``) stay, because ConceptNet 4 keeps them too
and they change the meaning (``pick up``, ``not eat``).
"""

_WORD = re.compile(r"[a-z0-9]+")

# Contractions are expanded before splitting so that "don't" keeps its negation and "can't" does not
# leave a stray "ca".
_CONTRACTIONS = (
    (re.compile(r"\bcan['’]t\b"), "can not"),
    (re.compile(r"\bwon['’]t\b"), "will not"),
    (re.compile(r"n['’]t\b"), " not"),
    (re.compile(r"['’](s|re|ve|ll|d|m)\b"), " "),
)

_lemmas: dict[str, str] = {}


def _lemma(word: str) -> str:
    """The lemma of a lower-case word, memoised (a vocabulary is small, a graph is not).

    simplemma picks the lemma, but simplemma 2.0 returns non-words for some common forms
    ("playing" -> "playe", "singing" -> "singe", "gone" -> "gan"). lemminflect's dictionary lists
    the valid lemmas of a word per part of speech. When the word is in that dictionary and
    simplemma's lemma is not among them, lemminflect's verb lemma is used for -ing/-ed forms and
    its noun lemma otherwise.
    """
    lemma = _lemmas.get(word)
    if lemma is None:
        lemma = simplemma.lemmatize(word, lang="en").lower()
        valid = lemminflect.getAllLemmas(word)
        if valid and not any(lemma in lemmas for lemmas in valid.values()):
            prefer_verb = word.endswith(("ing", "ed"))
            order = ("VERB", "NOUN", "ADJ", "ADV") if prefer_verb else ("NOUN", "VERB", "ADJ", "ADV")
            lemma = next((valid[pos][0] for pos in order if pos in valid), next(iter(valid.values()))[0])
        if not _WORD.fullmatch(lemma):
            lemma = word
        _lemmas[word] = lemma
    return lemma


def _fold(text: str) -> str:
    """Lower-case ``text`` and strip accents ("Café" -> "cafe")."""
    text = text.lower()
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(character for character in decomposed if not unicodedata.combining(character))


def normalize_tokens(text: str) -> list[str]:
    """Return the content words of ``text`` as lemmas, in order, with stop words removed."""
    text = _fold(text)
    if "'" in text or "’" in text:
        for pattern, replacement in _CONTRACTIONS:
            text = pattern.sub(replacement, text)

    tokens = []
    for word in _WORD.findall(text):
        if word in STOP_WORDS:
            continue
        lemma = _lemma(word)
        if lemma not in STOP_WORDS:
            tokens.append(lemma)
    return tokens


def normalize(text: str) -> str:
    """Return the concept key of ``text``: its content-word lemmas joined by single spaces ("" if none)."""
    return " ".join(normalize_tokens(text))
