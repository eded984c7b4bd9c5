"""The unit of knowledge: a ``(name, property, value)`` triple with a stable id."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import KBValidationError

TRIPLE_FIELDS = ("name", "property", "value")


def triple_id(name: str, property: str, value: str) -> str:
    """Content-addressed id: the same fact gets the same id in every process and file."""
    digest = hashlib.sha1("\x1f".join((name, property, value)).encode("utf-8")).hexdigest()
    return digest[:16]


@dataclass(frozen=True)
class Triple:
    """A fact. ``extra`` holds optional fields (provenance, source, ...) that are kept on save."""

    name: str
    property: str
    value: str
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        for f in TRIPLE_FIELDS:
            v = getattr(self, f)
            if not isinstance(v, str):
                raise KBValidationError(f"{f} must be a string, got {type(v).__name__}", record=self._label(), field=f)
            if not v.strip():
                raise KBValidationError(f"{f} must be a non-empty string", record=self._label(), field=f)
        if not isinstance(self.extra, Mapping):
            raise KBValidationError("extra must be a mapping", record=self._label(), field="extra")

    def _label(self) -> str:
        return " | ".join(str(getattr(self, f, "?"))[:40] for f in TRIPLE_FIELDS)

    @property
    def id(self) -> str:
        return triple_id(self.name, self.property, self.value)

    @property
    def key_text(self) -> str:
        """Text whose embedding becomes the knowledge token's key."""
        return f"the {self.property} of {self.name}"

    @property
    def value_text(self) -> str:
        """Text whose embedding becomes the knowledge token's value."""
        return self.value

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "property": self.property, "value": self.value}
        for k, v in self.extra.items():
            if k not in out:
                out[k] = v
        return out

    @classmethod
    def from_dict(cls, record: Any, *, index: int | None = None) -> "Triple":
        """Build from a ``{"name", "property", "value", ...extra}`` mapping, naming the bad field."""
        label = f"#{index}" if index is not None else None
        if not isinstance(record, Mapping):
            raise KBValidationError(f"a triple record must be an object, got {type(record).__name__}", record=label)
        for f in TRIPLE_FIELDS:
            if f not in record:
                raise KBValidationError("missing field", record=label, field=f)
            v = record[f]
            if not isinstance(v, str):
                raise KBValidationError(f"must be a string, got {type(v).__name__}", record=label, field=f)
            if not v.strip():
                raise KBValidationError("must be a non-empty string", record=label, field=f)
        extra = {k: v for k, v in record.items() if k not in TRIPLE_FIELDS and k != "id"}
        return cls(record["name"], record["property"], record["value"], extra)

    def __str__(self) -> str:
        return f"({self.name}; {self.property}; {self.value})"
