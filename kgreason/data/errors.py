"""Errors raised while reading dataset files."""

from __future__ import annotations

from pathlib import Path

from kgreason.errors import KgreasonError

SKIP_HINT = "fix or remove the record, or pass data.strict=false to skip bad records"


class DataError(KgreasonError, ValueError):
    """A dataset file that is missing, unreadable or malformed."""


class RecordError(ValueError):
    """A malformed record; the reader adds the file and line number."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"field {field!r}: {problem}")
        self.field = field
        self.problem = problem


def record_error(path: str | Path, line: int, error: RecordError) -> DataError:
    """Turn a RecordError into a DataError that names the file, line and field, and what to do."""
    located = DataError(f"{path}:{line}: {error}; {SKIP_HINT}")
    located.path = Path(path)
    located.line = line
    located.field = error.field
    return located
