"""Typed errors. Every error a user can cause names the offending record/field/path."""

from __future__ import annotations


class KBLaMError(Exception):
    """Base class for all errors raised by kblam_integrations."""


def _located(message: str, path: object = None, record: object = None, field: str | None = None) -> str:
    """``message (file '...', record '...', field '...')`` with only the parts that are known."""
    where = []
    if path is not None:
        where.append(f"file {str(path)!r}")
    if record is not None:
        where.append(f"record {record!r}")
    if field is not None:
        where.append(f"field {field!r}")
    return f"{message} ({', '.join(where)})" if where else message


class KBValidationError(KBLaMError, ValueError):
    """A triple or record is malformed (missing field, empty string, non-string...)."""

    def __init__(self, message: str, *, record: object = None, field: str | None = None):
        self.record = record
        self.field = field
        super().__init__(_located(message, record=record, field=field))


class DuplicateTripleError(KBValidationError):
    """A triple already in the knowledge base was added with ``on_duplicate='error'``."""


class TripleNotFoundError(KBLaMError, KeyError):
    """A triple (or triple id) is not in the knowledge base."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else "triple not found"


class KBFormatError(KBLaMError, ValueError):
    """A knowledge-base file is corrupt, has an unknown format or an unexpected schema."""

    def __init__(self, message: str, *, path: object = None, record: object = None, field: str | None = None):
        self.path = path
        self.record = record
        self.field = field
        super().__init__(_located(message, path, record, field))


class ModelNotFoundError(KBLaMError, FileNotFoundError):
    """A model (backbone, sentence encoder, spaCy pipeline) cannot be found locally."""


class CacheMismatchError(KBLaMError, ValueError):
    """An encoded-KB cache was produced by different adapters or a different encoder."""


class ConfigError(KBLaMError, ValueError):
    """A configuration value is invalid."""
