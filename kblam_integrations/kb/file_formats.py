"""The KB file formats (JSON, JSON Lines, GraphML): one registry from suffix to reader and writer.

Formats (chosen by suffix, or by an explicit ``format=``):

``json`` (``.json``)
    ``{"triples": [{"name": ..., "property": ..., "value": ..., ...extra}, ...]}``,
    one triple per line so that files diff well. Extra fields (provenance dicts, ...)
    are kept as they are. Other top-level keys are ignored on load.
``jsonl`` (``.jsonl``, ``.ndjson``)
    One triple object per line; blank lines are skipped. Errors name the line number.
``graphml`` (``.graphml``)
    The KB graph (entities and values are nodes, each triple a directed edge keyed by
    its id with a ``property`` attribute), so the file opens in Gephi/yEd/networkx.
    GraphML attributes are scalars, so extra fields travel as one JSON string edge
    attribute ``extra``, and an ``index`` attribute keeps the triple order. XML 1.0
    cannot hold some characters at all (NUL and most other C0 controls, U+FFFE,
    U+FFFF) and its parsers turn a raw carriage return in text into a newline; a field
    containing such characters is therefore also stored JSON-escaped (pure ASCII) in a
    ``name_json``/``property_json``/``value_json`` edge attribute, which the loader
    prefers. Any Python string thus round-trips exactly. GraphML files written by other
    tools load too: the edge source is the name, the target the value, ``property`` the
    property, and other scalar edge attributes become extra fields.

Errors. Loading never raises anything but :class:`~kblam_integrations.errors.KBFormatError`
(a :class:`~kblam_integrations.errors.KBLaMError`) for a bad file: unknown format,
unreadable or missing file, invalid UTF-8/JSON/XML, wrong schema, or an invalid triple.
The error's ``path``, ``record`` (``"#<index>"`` for JSON and GraphML edges,
``"line <n>"`` for JSON Lines) and ``field`` say where the problem is. A missing file
raises :class:`KBFileNotFoundError`, which is both a ``KBFormatError`` and a
``FileNotFoundError`` so either ``except`` clause catches it.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import networkx as nx
from networkx.readwrite.graphml import write_graphml_xml

from ..errors import KBFormatError, KBValidationError
from .atomic_files import atomic_write
from .triple import TRIPLE_FIELDS, Triple, extra_problem, field_problem, record_problem

__all__ = [
    "FORMATS", "KB_FILE_FORMATS", "KB_FILE_SUFFIXES", "KBFileFormat", "KBFileNotFoundError", "detect_format",
    "dump_triples", "load_triples", "parse_triples", "save_triples",
]

#: Edge attributes the GraphML writer uses itself (never read back as extra fields).
_GRAPHML_RESERVED = frozenset({"property", "extra", "index", "id", "name_json", "property_json", "value_json"})
_ESCAPED_NODE_PREFIX = "kblam-json:"
# Characters a GraphML field may hold raw: XML 1.0 ``Char`` minus CR (parsers turn a raw
# CR in text into LF). TAB and LF are fine: ElementTree writes them as character
# references inside attributes and raw in text, and both survive parsing.
_XML_UNSAFE = re.compile("[^\t\n\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class KBFileNotFoundError(KBFormatError, FileNotFoundError):
    """The knowledge-base file does not exist.

    A :class:`KBFormatError` (so "any bad KB file" is one ``except``) that is also a
    :class:`FileNotFoundError` (so code that checks for missing files keeps working).
    """


# --------------------------------------------------------------------- formats
def detect_format(path: str | os.PathLike[str], format: str | None = None) -> str:
    """The canonical format name (``"json"``, ``"jsonl"`` or ``"graphml"``).

    An explicit ``format`` (case-insensitive, with or without a leading dot, ``ndjson``
    accepted) wins over the suffix, so a file can be read whatever it is called.
    Raises :class:`KBFormatError` for an unknown format or suffix.
    """
    if format is not None:
        key = str(format).strip().lower().lstrip(".")
        by_name = {name: f.name for f in KB_FILE_FORMATS.values() for name in (f.name, *f.aliases)}
        if key not in by_name:
            raise KBFormatError(f"unknown KB format {format!r}; expected one of {', '.join(FORMATS)}",
                                path=path, field="format")
        return by_name[key]
    suffix = Path(path).suffix.lower()
    by_suffix = {s: f.name for f in KB_FILE_FORMATS.values() for s in f.suffixes}
    if suffix not in by_suffix:
        raise KBFormatError(
            f"cannot tell the KB format from the suffix {suffix or '(none)'!r}; use one of "
            f"{', '.join(KB_FILE_SUFFIXES)} or pass format= ({', '.join(FORMATS)})", path=path, field="format")
    return by_suffix[suffix]


def save_triples(triples: Iterable[Triple], path: str | os.PathLike[str], format: str | None = None) -> Path:
    """Write ``triples`` atomically (see :func:`atomic_write`) and return the path.

    Raises :class:`KBFormatError` for an unknown format, :class:`KBValidationError` for a
    triple whose extra fields cannot be stored (naming the record and field; the
    existing file is left as it was), and ``OSError`` if the directory is not writable.
    """
    fmt = detect_format(path, format)
    return atomic_write(path, KB_FILE_FORMATS[fmt].serialize(list(triples)))


def dump_triples(triples: Iterable[Triple], format: str) -> bytes:
    """The bytes :func:`save_triples` would write, for in-memory use and tests."""
    return b"".join(KB_FILE_FORMATS[detect_format("<memory>", format)].serialize(list(triples)))


def _label(index: int, triple: Any) -> str:
    return f"#{index} {triple}"


def _checked_triple(item: Any, index: int) -> Triple:
    if not isinstance(item, Triple):
        raise KBValidationError(f"expected a Triple, got {type(item).__name__}", record=f"#{index}")
    return item


def _extra_json(triple: Triple, index: int, *, ensure_ascii: bool) -> str:
    """``json.dumps(triple.extra)``, or a KBValidationError naming the unserializable field."""
    try:
        return json.dumps(dict(triple.extra), ensure_ascii=ensure_ascii)
    except (TypeError, ValueError, RecursionError) as exc:
        raise _unserializable(triple, index, exc) from exc


def _unserializable(triple: Triple, index: int, exc: BaseException) -> KBValidationError:
    bad = None
    for key, value in triple.extra.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError, RecursionError):
            bad = key
            break
    return KBValidationError(f"extra field cannot be stored as JSON: {type(exc).__name__}: {exc}",
                             record=_label(index, triple), field=bad)


def _record_line(triple: Triple, index: int) -> bytes:
    """One triple as a single line of UTF-8 JSON.

    Written readable (``ensure_ascii=False``); extra values holding lone surrogates
    cannot be UTF-8 encoded that way, so such a record falls back to ASCII escapes,
    which decode to the very same strings.
    """
    record = triple.to_dict()
    try:
        text = json.dumps(record, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise _unserializable(triple, index, exc) from exc
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(record, ensure_ascii=True).encode("ascii")


def _serialize_json(triples: list[Triple]) -> Iterator[bytes]:
    """Stream the JSON document record by record (the atomic writer makes that safe)."""
    if not triples:
        yield b'{\n  "triples": []\n}\n'
        return
    yield b'{\n  "triples": [\n'
    for i, item in enumerate(triples):
        t = _checked_triple(item, i)
        yield (b",\n" if i else b"") + b"    " + _record_line(t, i)
    yield b'\n  ]\n}\n'


def _serialize_jsonl(triples: list[Triple]) -> Iterator[bytes]:
    for i, item in enumerate(triples):
        yield _record_line(_checked_triple(item, i), i) + b"\n"


def _xml_safe(text: str) -> bool:
    return _XML_UNSAFE.search(text) is None


def _serialize_graphml(triples: list[Triple]) -> Iterator[bytes]:
    """Build an export graph (not ``kb.graph``: it needs escaping, extras and order)."""
    graph = nx.MultiDiGraph()
    graph.graph["kblam_format"] = "kblam-kb-graphml"
    graph.graph["kblam_format_version"] = 1

    def node(text: str, kind: str) -> str:
        node_id = text if _xml_safe(text) else _ESCAPED_NODE_PREFIX + json.dumps(text)
        if node_id not in graph:
            graph.add_node(node_id, kind=kind)
        elif kind == "entity":
            graph.nodes[node_id]["kind"] = "entity"
        return node_id

    for i, item in enumerate(triples):
        t = _checked_triple(item, i)
        attrs: dict[str, Any] = {"index": i}
        if _xml_safe(t.property):
            attrs["property"] = t.property
        for f in TRIPLE_FIELDS:
            text = getattr(t, f)
            if not _xml_safe(text):
                attrs[f"{f}_json"] = json.dumps(text)  # ASCII-only, hence always XML-safe
        if t.extra:
            attrs["extra"] = _extra_json(t, i, ensure_ascii=True)
        graph.add_edge(node(t.name, "entity"), node(t.value, "value"), key=t.id, **attrs)
    buf = io.BytesIO()
    # the pure-Python writer: identical output whether or not lxml is installed
    write_graphml_xml(graph, buf, encoding="utf-8")
    yield buf.getvalue()


# --------------------------------------------------------------------- loading
def load_triples(path: str | os.PathLike[str], format: str | None = None) -> list[Triple]:
    """Read and fully validate a KB file; the format comes from ``format`` or the suffix.

    Returns the triples in file order (duplicates included: the knowledge base applies
    its duplicate policy). Nothing is returned unless the whole file is valid, which is
    what makes :meth:`KnowledgeBase.load_into` all-or-nothing.

    Raises:
        KBFileNotFoundError: the file does not exist (also a ``FileNotFoundError``).
        KBFormatError: unknown format, unreadable file, invalid UTF-8/JSON/GraphML, wrong
            schema or an invalid triple, with ``path``, ``record`` and ``field`` set.
    """
    fmt = detect_format(path, format)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise KBFileNotFoundError("knowledge-base file not found", path=path) from exc
    except OSError as exc:
        raise KBFormatError(f"cannot read knowledge-base file: {type(exc).__name__}: {exc.strerror or exc}",
                            path=path) from exc
    return parse_triples(data, fmt, path=path)


def parse_triples(data: bytes | str, format: str, *, path: object = None) -> list[Triple]:
    """Parse the content of a KB file (``path`` only labels errors). See :func:`load_triples`."""
    fmt = detect_format(path if path is not None else "<memory>", format)
    return KB_FILE_FORMATS[fmt].parse(data, path)


def _decode(data: bytes | str, path: object) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8-sig")  # tolerate a byte-order mark some editors add
    except UnicodeDecodeError as exc:
        raise KBFormatError(f"not valid UTF-8 (byte offset {exc.start})", path=path) from exc


def _json_value(text: str, path: object, record: str | None, field: str | None = None) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise KBFormatError(f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                            path=path, record=record, field=field) from exc
    except (ValueError, RecursionError) as exc:  # e.g. absurdly deep nesting, huge integers
        raise KBFormatError(f"invalid JSON: {type(exc).__name__}: {exc}", path=path, record=record,
                            field=field) from exc


def _triple(record: Any, path: object, label: str) -> Triple:
    problem = record_problem(record)
    if problem is None:
        try:
            return Triple.from_dict(record)
        except KBValidationError as exc:  # e.g. a reserved key; kept for safety
            problem = (f"invalid triple: {exc}", exc.field)
    raise KBFormatError(problem[0], path=path, record=label, field=problem[1])


def _parse_json(data: bytes | str, path: object) -> list[Triple]:
    doc = _json_value(_decode(data, path), path, None)
    if not isinstance(doc, dict):
        raise KBFormatError(f'expected a JSON object {{"triples": [...]}} at the top level, got {_json_type(doc)}',
                            path=path)
    if "triples" not in doc:
        raise KBFormatError('missing the "triples" list', path=path, field="triples")
    records = doc["triples"]
    if not isinstance(records, list):
        raise KBFormatError(f'"triples" must be a list, got {_json_type(records)}', path=path, field="triples")
    return [_triple(r, path, f"#{i}") for i, r in enumerate(records)]


def _parse_jsonl(data: bytes | str, path: object) -> list[Triple]:
    out = []
    # split on "\n" only: str.splitlines() would also split inside records at U+2028,
    # U+0085, ... which json.dumps(ensure_ascii=False) leaves raw in strings
    for lineno, line in enumerate(_decode(data, path).split("\n"), start=1):
        text = line.strip()
        if not text:
            continue
        label = f"line {lineno}"
        out.append(_triple(_json_value(text, path, label), path, label))
    return out


def _parse_graphml(data: bytes | str, path: object) -> list[Triple]:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    _refuse_unsafe_xml(raw, path)
    try:
        graph = nx.read_graphml(io.BytesIO(raw), force_multigraph=True)
    except Exception as exc:  # noqa: BLE001 - expat, networkx, int()/float() all raise their own types
        raise KBFormatError(f"not valid GraphML: {type(exc).__name__}: {exc}", path=path) from exc
    edges = list(graph.edges(keys=True, data=True))
    if edges and all(type(d.get("index")) is int for _, _, _, d in edges):
        edges.sort(key=lambda e: e[3]["index"])  # file order is lost by the graph; restore it
    out = []
    for i, (source, target, _key, attrs) in enumerate(edges):
        label = f"#{i}"
        fields = {"name": source, "value": target, "property": attrs.get("property")}
        for f in TRIPLE_FIELDS:
            if f"{f}_json" in attrs:
                fields[f] = _escaped_field(attrs[f"{f}_json"], path, label, f)
            elif f == "property" and "property" not in attrs:
                raise KBFormatError("edge has no 'property' attribute", path=path, record=label, field="property")
        extra = {k: v for k, v in attrs.items() if k not in _GRAPHML_RESERVED}
        if "extra" in attrs:
            stored = attrs["extra"]
            value = _json_value(stored, path, label, "extra") if isinstance(stored, str) else stored
            if not isinstance(value, dict):
                raise KBFormatError(f"'extra' must be a JSON object, got {_json_type(value)}",
                                    path=path, record=label, field="extra")
            extra.update(value)
        problem = extra_problem(extra)
        if problem:
            raise KBFormatError(problem[0], path=path, record=label, field=problem[1])
        out.append(_triple({**fields, **extra}, path, label))
    return out


def _refuse_unsafe_xml(raw: bytes, path: object) -> None:
    """Refuse a DTD (entity bombs, external entities) whatever the expat version.

    A DTD can only appear before the root element, so parsing up to the first start
    tag (with ``defusedxml`` when installed, which forbids it outright) is enough; the
    fallback is a byte scan for ``<!DOCTYPE``/``<!ENTITY``. GraphML never needs a DTD.
    """
    try:
        from defusedxml import DefusedXmlException
        from defusedxml.ElementTree import iterparse
    except ImportError:  # pragma: no cover - defusedxml is a dependency
        if re.search(rb"<!\s*(DOCTYPE|ENTITY)", raw, re.IGNORECASE):
            raise KBFormatError("GraphML with a DTD or entity declarations is refused (unsafe XML)", path=path)
        return
    try:
        for _ in iterparse(io.BytesIO(raw), events=("start",), forbid_dtd=True):
            break
    except DefusedXmlException as exc:
        raise KBFormatError(f"GraphML with a DTD or entity declarations is refused (unsafe XML: "
                            f"{type(exc).__name__})", path=path) from None
    except Exception:  # noqa: BLE001 - a syntax error: reported by the real parse below
        return


def _escaped_field(stored: Any, path: object, label: str, field: str) -> str:
    value = _json_value(stored, path, label, field) if isinstance(stored, str) else stored
    problem = field_problem(value)
    if problem:
        raise KBFormatError(f"{field}_json {problem}", path=path, record=label, field=field)
    return value


def _json_type(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    if isinstance(value, float) and not math.isfinite(value):
        return "a non-finite number"
    return "a number"


# --------------------------------------------------------------------- registry
@dataclass(frozen=True)
class KBFileFormat:
    """One KB file format: its name, the suffixes and ``format=`` spellings that pick it,
    and its writer (triples -> byte chunks) and reader (file content -> triples)."""

    name: str
    suffixes: tuple[str, ...]
    aliases: tuple[str, ...]
    serialize: Callable[[list[Triple]], Iterator[bytes]]
    parse: Callable[[bytes | str, object], list[Triple]]


#: The one registry of KB file formats, by canonical name: add a format here.
KB_FILE_FORMATS: dict[str, KBFileFormat] = {f.name: f for f in (
    KBFileFormat("json", (".json",), (), _serialize_json, _parse_json),
    KBFileFormat("jsonl", (".jsonl", ".ndjson"), ("ndjson", "jsonlines"), _serialize_jsonl, _parse_jsonl),
    KBFileFormat("graphml", (".graphml",), (), _serialize_graphml, _parse_graphml),
)}
#: Canonical format names.
FORMATS = tuple(KB_FILE_FORMATS)
#: Every file suffix ``KnowledgeBase.load`` / ``save`` understand: the one list other modules read.
KB_FILE_SUFFIXES = tuple(s for f in KB_FILE_FORMATS.values() for s in f.suffixes)
