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


class CacheIntegrityError(KBFormatError, CacheMismatchError):
    """An encoded-KB cache failed verification on load: bad checksum, shape, dtype,
    non-finite tokens, triple ids that do not match their text, or tokens that do not
    match their triples under the current encoder. Never used with a silent fallback:
    a cache that fails is refused, and re-encoding the KB fixes it."""


class KBLockTimeoutError(KBLaMError, TimeoutError):
    """Another process held a KB file's edit lock for longer than the timeout."""

    def __init__(self, message: str, *, path: object = None):
        self.path = path
        super().__init__(_located(message, path))


class PromptTooLongError(KBLaMError, ValueError):
    """A prompt does not fit the backbone's context window (checked before any forward)."""

    def __init__(self, message: str, *, tokens: int, limit: int):
        self.tokens = tokens
        self.limit = limit
        super().__init__(message)


class InsufficientMemoryError(KBLaMError, MemoryError):
    """An operation (encoding or loading a KB) would not fit in the memory available now."""

    def __init__(self, message: str, *, needed: int, available: int):
        self.needed = needed
        self.available = available
        super().__init__(message)
