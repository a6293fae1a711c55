"""Turn user-typed questions into Examples: inline choices, --choices lists and input checks."""

from __future__ import annotations

import hashlib
import logging
import re
import string
import unicodedata

from kgreason.data.examples import Choice, Example
from kgreason.errors import KgreasonError

logger = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 1000
"""Longer questions are truncated with a warning; the decoder keeps at most model.max_question_tokens anyway."""

# "A) ocean B) desert", "(A) ocean (B) desert" or one "A. ocean" per line; labels must run A, B, C ...
_INLINE_LABEL = re.compile(r"(?:^|(?<=\s))\(?([A-Ja-j])[\).:]\s+")


class QuestionError(KgreasonError, ValueError):
    """A question or choice list that cannot be answered as given."""


def split_inline_choices(text: str) -> tuple[str, list[str]]:
    """Split ``"stem A) x B) y"`` into the stem and the choice texts; no inline choices gives ``(text, [])``.

    Labels must start at A and run in order, with at least two of them, so that a stray "a." in the
    question is not read as a choice.
    """
    matches = list(_INLINE_LABEL.finditer(text))
    expected = "A"
    chain = []
    for match in matches:
        if match.group(1).upper() == expected:
            chain.append(match)
            expected = chr(ord(expected) + 1)
        elif chain and match.group(1).upper() == "A":
            chain = [match]
            expected = "B"
    if len(chain) < 2:
        return text, []

    stem = text[: chain[0].start()].strip()
    choices = []
    for index, match in enumerate(chain):
        end = chain[index + 1].start() if index + 1 < len(chain) else len(text)
        choices.append(text[match.end():end].strip().rstrip(",;"))
    return stem, choices


def clean_question(text: str) -> str:
    """Collapse whitespace, reject an empty question, and truncate one longer than MAX_QUESTION_CHARS."""
    text = " ".join(text.split())
    if not text:
        raise QuestionError("the question is empty; pass a question such as \"Where would you find a jellyfish?\"")
    if len(text) > MAX_QUESTION_CHARS:
        logger.warning("question has %d characters; kept the first %d", len(text), MAX_QUESTION_CHARS)
        text = text[:MAX_QUESTION_CHARS].rsplit(" ", 1)[0] or text[:MAX_QUESTION_CHARS]
    return text


def check_choices(choices: list[str]) -> list[str]:
    """Strip choice texts; reject fewer than two, an empty one, or duplicates (compared case-insensitively)."""
    cleaned = [" ".join(choice.split()) for choice in choices]
    if any(not choice for choice in cleaned):
        raise QuestionError(f"empty choice in {choices!r}; separate choices with '|', as in \"ocean|desert|attic\"")
    if len(cleaned) == 1:
        raise QuestionError(
            f"only one choice given ({cleaned[0]!r}); give at least two, or none to let the model write an answer"
        )
    seen: dict[str, str] = {}
    for choice in cleaned:
        key = choice.casefold()
        if key in seen:
            same = "" if choice == seen[key] else f" (the same as {seen[key]!r} ignoring case)"
            raise QuestionError(f"duplicate choice {choice!r}{same}; each choice must differ")
        seen[key] = choice
    return cleaned


def english_letter_share(text: str) -> float:
    """Share of the non-space characters that are ASCII letters (0 for emoji-only text)."""
    visible = [char for char in text if not char.isspace()]
    if not visible:
        return 0.0
    letters = sum(char in string.ascii_letters for char in visible)
    return letters / len(visible)


def describe_language_issue(text: str) -> str | None:
    """A warning for text the English-only graph will not match, else None."""
    if english_letter_share(text) == 0.0:
        symbols = {unicodedata.category(char)[0] for char in text if not char.isspace()}
        kind = "emoji or symbols only" if symbols <= {"S", "P", "N"} else "no Latin letters"
        return f"the question has {kind}; the knowledge graph is English, so no concept can be grounded"
    if english_letter_share(text) < 0.5:
        return "the question is mostly non-Latin text; the knowledge graph is English, so grounding may find little"
    non_ascii_letters = sorted({char for char in text if char.isalpha() and not char.isascii()})
    if non_ascii_letters:
        return (f"the question has letters outside English ({''.join(non_ascii_letters[:5])}); the knowledge graph and the "
                "model are English-only, so the answer may be unreliable")
    return None


def make_example(question: str, choices: list[str] | None = None, identifier: str | None = None) -> Example:
    """Build an Example from free text; choices come from ``choices`` or from inline "A) ... B) ..." labels."""
    if not isinstance(question, str):
        raise QuestionError(f"the question must be text, got {type(question).__name__} {question!r}; "
                            'in JSON write "question": "Where is milk kept cold?"')
    if choices is not None and not (isinstance(choices, (list, tuple)) and all(isinstance(c, str) for c in choices)):
        raise QuestionError(f"choices must be a list of strings, got {choices!r}; in JSON write "
                            '"choices": ["ocean", "desert"]')
    question = clean_question(question)
    stem, inline = split_inline_choices(question)
    if choices and inline:
        raise QuestionError("the question carries inline choices (A) ... B) ...) and --choices was given too; use one")
    if inline:
        if not stem:
            raise QuestionError(f"{question!r} has choices but no question before them; put the question first")
        question = stem
        choices = inline
    choices = check_choices(choices) if choices else []

    warning = describe_language_issue(question)
    if warning:
        # The printed result carries the warning too, so the log line is for --verbose runs.
        logger.debug(warning)

    labels = string.ascii_uppercase
    if len(choices) > len(labels):
        raise QuestionError(f"{len(choices)} choices given; at most {len(labels)} are supported")
    digest = hashlib.sha256("\n".join([question, *choices]).encode("utf-8")).hexdigest()[:16]
    example = Example(
        id=str(identifier) if identifier is not None else f"q-{digest}",
        question=question,
        choices=tuple(Choice(label=labels[i], text=text) for i, text in enumerate(choices)),
        answer=None,
        explanation=None,
        dataset="user",
        split="user",
    )
    if warning:
        example.metadata["warning"] = warning
    return example
