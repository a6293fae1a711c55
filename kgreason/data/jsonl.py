"""Strict line-oriented readers that report the file, line and field of every bad record."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from kgreason.data.errors import SKIP_HINT, DataError, RecordError, record_error

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class ReadReport:
    """What a lenient read skipped."""

    path: Path
    read: int = 0
    skipped: int = 0
    first_problem: str | None = None

    def skip(self, problem: str) -> None:
        self.skipped += 1
        if self.first_problem is None:
            self.first_problem = problem


def iter_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, text) for the non-blank lines of a UTF-8 file.

    Raises DataError for a missing or empty file and for bytes that are not UTF-8, naming the line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found; check the data mirror (data.root or KGREASON_DATA)")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty; restore it from the official release or the mirror")

    with open(path, "rb") as stream:
        for number, raw in enumerate(stream, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise DataError(
                    f"{path}:{number}: not valid UTF-8 (byte {error.start}: {raw[error.start:error.start + 1]!r}); "
                    "convert the file to UTF-8 or restore it from the official release"
                ) from None
            text = text.strip()
            if text:
                yield number, text.lstrip("\ufeff")


def parse_jsonl(
    path: str | Path,
    parse: Callable[[dict[str, Any]], T],
    strict: bool = True,
    key: Callable[[T], str] | None = None,
) -> tuple[list[T], ReadReport]:
    """Read a JSONL file, turning each object into a record with ``parse``.

    ``parse`` raises RecordError for a bad record. ``key`` gives the id used to reject duplicates.
    In strict mode the first bad record raises DataError naming file, line and field; otherwise bad
    records are skipped, counted in the report and summarised in one warning.
    """
    path = Path(path)
    report = ReadReport(path)
    records: list[T] = []
    seen: dict[str, int] = {}

    for number, text in iter_lines(path):
        try:
            record = _parse_line(text, parse)
            if key is not None:
                identifier = key(record)
                if identifier in seen:
                    raise RecordError("id", f"duplicate id {identifier!r} (first seen on line {seen[identifier]})")
                seen[identifier] = number
        except RecordError as error:
            if strict:
                raise record_error(path, number, error) from None
            report.skip(f"line {number}: {error}")
            continue
        records.append(record)

    report.read = len(records)
    if not records and report.skipped == 0:
        raise DataError(f"{path}: file holds no records; restore it from the official release or the mirror")
    if report.skipped:
        logger.warning("%s: skipped %d bad records (first: %s)", path, report.skipped, report.first_problem)
    if not records:
        raise DataError(f"{path}: every record is malformed (first: {report.first_problem}); {SKIP_HINT}")
    return records, report


def _parse_line(text: str, parse: Callable[[dict[str, Any]], T]) -> T:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise RecordError("(line)", f"malformed JSON ({error.msg} at column {error.colno})") from None
    if not isinstance(value, dict):
        raise RecordError("(line)", f"expected a JSON object, got {type(value).__name__}")
    return parse(value)


def require(record: dict[str, Any], path: str, kind: type | tuple[type, ...] = str) -> Any:
    """Return the value at dotted ``path`` in ``record``, raising RecordError if absent or of another type."""
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            raise RecordError(path, "missing")
        value = value[part]
    if not isinstance(value, kind):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise RecordError(path, f"expected {expected}, got {type(value).__name__} {value!r}")
    if isinstance(value, str) and not value.strip():
        raise RecordError(path, "empty string")
    return value
