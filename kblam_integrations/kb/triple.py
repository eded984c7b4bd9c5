"""The unit of knowledge: a ``(name, property, value)`` triple with a stable id."""

from __future__ import annotations

import hashlib
import json
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import KBValidationError

TRIPLE_FIELDS = ("name", "property", "value")
#: Keys an ``extra`` mapping may not use: they would shadow a triple field on save, or
#: (``id``) be dropped on load because the id is always recomputed from the content.
RESERVED_EXTRA_KEYS = frozenset((*TRIPLE_FIELDS, "id"))

_SEP = "\x1f"


def triple_id(name: str, property: str, value: str) -> str:
    """Content-addressed id: the same fact gets the same id in every process and file.

    The id is a truncated SHA-1 of the UTF-8 text, so it never depends on ``hash()``
    randomisation. Fields are joined with ``\\x1f``; a field that itself contains
    ``\\x1f`` would make that join ambiguous (``("a\\x1fb", "c", "d")`` and
    ``("a", "b\\x1fc", "d")`` would share an id), so such triples hash an unambiguous
    JSON encoding instead. That encoding never contains a raw ``\\x1f`` while every
    plain join contains exactly two, so the two kinds of input cannot collide, and the
    ids of all ordinary triples (every id computed so far) stay as they were.
    """
    if _SEP in name or _SEP in property or _SEP in value:
        text = "\x1e" + json.dumps([name, property, value], ensure_ascii=True)
    else:
        text = _SEP.join((name, property, value))
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


#: Unicode categories that never show: controls, format characters (zero-width space and
#: joiners, bidi marks, BOM...) and separators. Unassigned code points count as visible so
#: that a newer Unicode database can never turn a valid KB file invalid.
_INVISIBLE_CATEGORIES = frozenset(("Cc", "Cf", "Zs", "Zl", "Zp"))
#: Letters and symbols that render as blank (Hangul fillers, braille blank).
_BLANK_CHARS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def has_visible_char(text: str) -> bool:
    """Whether ``text`` has at least one character that shows: a name made only of
    zero-width or control characters looks empty yet would get its own id."""
    return any(not ch.isspace() and ch not in _BLANK_CHARS and unicodedata.category(ch) not in _INVISIBLE_CATEGORIES
               for ch in text)


def field_problem(value: Any) -> str | None:
    """Why ``value`` cannot be a name/property/value, or None when it can.

    Shared by :class:`Triple` and the file loaders so that both reject exactly the same
    inputs with the same words. A field needs at least one visible character
    (:func:`has_visible_char`). Lone surrogates (possible in a Python ``str``, e.g. from
    ``json.loads('"\\\\ud800"')``) are rejected because they cannot be encoded as UTF-8,
    hashed into an id or written to any of the KB file formats.
    """
    if not isinstance(value, str):
        return f"must be a string, got {type(value).__name__}"
    if not value.strip():
        return "must be a non-empty string"
    if not has_visible_char(value):
        return "must contain a visible character (it has only control, format or zero-width characters)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode (contains a lone surrogate)"
    return None


def extra_problem(extra: Any) -> tuple[str, str] | None:
    """``(message, field)`` saying why ``extra`` is not a valid extra mapping, or None."""
    if not isinstance(extra, Mapping):
        return f"extra must be a mapping, got {type(extra).__name__}", "extra"
    for key in extra:
        if not isinstance(key, str):
            return f"extra keys must be strings, got {type(key).__name__} key {key!r}", "extra"
        if key in RESERVED_EXTRA_KEYS:
            return f"extra key {key!r} is reserved (it would shadow the triple's own field)", key
    return None


def record_problem(record: Any) -> tuple[str, str | None] | None:
    """``(message, field)`` for the first reason ``record`` is not a valid triple record.

    A record is a mapping with string ``name``/``property``/``value`` plus optional extra
    fields; an ``id`` field is accepted and ignored (ids are derived from the content).
    Returns None for a valid record. Loaders use this to report the file, record and
    field of a problem without parsing an exception message.
    """
    if not isinstance(record, Mapping):
        return f"a triple record must be an object, got {type(record).__name__}", None
    for f in TRIPLE_FIELDS:
        if f not in record:
            return "missing field", f
        problem = field_problem(record[f])
        if problem:
            return problem, f
    for key in record:
        if not isinstance(key, str):
            return f"record keys must be strings, got {type(key).__name__} key {key!r}", None
    return None


@dataclass(frozen=True)
class Triple:
    """A fact. ``extra`` holds optional fields (provenance, source, ...) that are kept on save.

    ``extra`` is copied on construction so that later changes to the caller's dict do not
    silently alter a triple already stored in a knowledge base. Its keys must be strings
    and may not be ``name``/``property``/``value``/``id`` (they would be shadowed or lost
    when the triple is written to a file); its values should be JSON values so that the
    triple can be saved.
    """

    name: str
    property: str
    value: str
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        for f in TRIPLE_FIELDS:
            problem = field_problem(getattr(self, f))
            if problem:
                raise KBValidationError(f"{f} {problem}", record=self._label(), field=f)
        problem2 = extra_problem(self.extra)
        if problem2:
            raise KBValidationError(problem2[0], record=self._label(), field=problem2[1])
        object.__setattr__(self, "extra", dict(self.extra))

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
        problem = record_problem(record)
        if problem:
            raise KBValidationError(problem[0], record=label, field=problem[1])
        extra = {k: v for k, v in record.items() if k not in RESERVED_EXTRA_KEYS}
        return cls(record["name"], record["property"], record["value"], extra)

    def __str__(self) -> str:
        return f"({self.name}; {self.property}; {self.value})"
