"""A knowledge base of triples stored as a ``networkx.MultiDiGraph``.

Entities are nodes; each triple is an edge ``name -> value`` labelled with its
property and keyed by the triple id. Subscribers are told what changed so that an
encoder re-encodes only added/updated triples.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Literal, Mapping

import networkx as nx

from ..errors import DuplicateTripleError, KBValidationError, TripleNotFoundError
from .documents import document_parts, document_triple
from .file_formats import load_triples, save_triples
from .triple import Triple

OnDuplicate = Literal["ignore", "error", "replace"]
_DUPLICATE_POLICIES = ("ignore", "error", "replace")


@dataclass(frozen=True)
class KBChange:
    """What one mutation did. ``version`` is the KB version after the change."""

    added: tuple[Triple, ...] = ()
    removed: tuple[Triple, ...] = ()
    version: int = 0


Listener = Callable[[KBChange], None]


class KnowledgeBase:
    """Mutable, observable set of :class:`Triple` objects.

    Thread-safe for concurrent readers and writers: mutations take a lock, and
    :meth:`snapshot` returns an immutable view with its version.
    """

    def __init__(self, triples: Iterable[Triple | Mapping[str, Any] | tuple] = (), *, on_duplicate: OnDuplicate = "ignore"):
        if on_duplicate not in _DUPLICATE_POLICIES:
            raise KBValidationError(f"on_duplicate must be one of {_DUPLICATE_POLICIES}, got {on_duplicate!r}", field="on_duplicate")
        self.on_duplicate: OnDuplicate = on_duplicate
        self.graph = nx.MultiDiGraph()
        self._triples: dict[str, Triple] = {}
        self._listeners: list[Listener] = []
        self._lock = threading.RLock()
        self.version = 0
        if triples is not None:  # not ``if triples``: generators are always truthy, arrays refuse bool()
            self.add_many(triples)

    # ------------------------------------------------------------------ reading
    def __len__(self) -> int:
        return len(self._triples)

    def __iter__(self) -> Iterator[Triple]:
        """Iterate over a copy taken under the lock, so writers in other threads never
        break the iteration ("dictionary changed size during iteration")."""
        with self._lock:
            return iter(list(self._triples.values()))

    def __contains__(self, item: object) -> bool:
        if isinstance(item, Triple):
            return item.id in self._triples
        if isinstance(item, str):
            return item in self._triples
        if isinstance(item, tuple) and len(item) == 3 and all(isinstance(x, str) for x in item):
            try:
                return Triple(*item).id in self._triples
            except KBValidationError:
                return False
        return False

    def __repr__(self) -> str:
        return f"KnowledgeBase({len(self)} triples, {self.graph.number_of_nodes()} nodes)"

    def get(self, triple_id: str) -> Triple:
        try:
            return self._triples[triple_id]
        except KeyError:
            raise TripleNotFoundError(f"no triple with id {triple_id!r}") from None

    @property
    def ids(self) -> list[str]:
        with self._lock:
            return list(self._triples)

    def snapshot(self) -> tuple[int, tuple[Triple, ...]]:
        """A consistent (version, triples) view, safe to use while the KB keeps changing."""
        with self._lock:
            return self.version, tuple(self._triples.values())

    def find(self, name: str | None = None, property: str | None = None) -> list[Triple]:
        """Triples matching an entity name and/or a property (exact match)."""
        with self._lock:
            return [
                t for t in self._triples.values()
                if (name is None or t.name == name) and (property is None or t.property == property)
            ]

    # ----------------------------------------------------------------- writing
    @staticmethod
    def _coerce(item: Triple | Mapping[str, Any] | tuple, index: int | None = None) -> Triple:
        if isinstance(item, Triple):
            return item
        if isinstance(item, Mapping):
            return Triple.from_dict(item, index=index)
        if isinstance(item, (tuple, list)) and len(item) == 3:
            return Triple.from_dict(dict(zip(("name", "property", "value"), item)), index=index)
        parts = document_parts(item)
        if parts is not None:
            triple = document_triple(parts[1])
            if triple is not None:
                return triple
            raise KBValidationError(
                f"this {type(item).__name__} carries no triple in its metadata (name/property/value); use "
                "KnowledgeBase.from_documents(docs) to extract triples from its text",
                record=f"#{index}" if index is not None else None, field="metadata")
        raise KBValidationError(
            f"expected a Triple, a mapping or a (name, property, value) tuple, got {type(item).__name__}",
            record=f"#{index}" if index is not None else None,
        )

    def add(self, name: str | Triple | Mapping[str, Any] | tuple, property: str | None = None,
            value: str | None = None, **extra: Any) -> Triple:
        """Add one triple: ``kb.add("Ada", "born in", "London")`` or ``kb.add(Triple(...))``.

        Returns the triple stored in the KB for this fact: with ``on_duplicate="ignore"``
        and an existing fact, that is the one already there (with its own ``extra``).
        """
        if isinstance(name, (Triple, Mapping, tuple)):
            triple = self._coerce(name)
        else:
            triple = Triple(name, property, value, extra)  # type: ignore[arg-type]
        with self._lock:
            self.add_many([triple])
            return self._triples.get(triple.id, triple)

    def add_many(self, items: Iterable[Triple | Mapping[str, Any] | tuple], *, on_duplicate: OnDuplicate | None = None) -> list[Triple]:
        """Add many triples atomically: if one is invalid (or a duplicate under ``"error"``),
        none is added.

        Duplicate policies: ``"ignore"`` keeps the triple already there (or the first of
        the batch), ``"error"`` raises :class:`DuplicateTripleError`, ``"replace"`` swaps
        in the new triple (its ``extra`` wins) and reports it as removed + added so an
        encoder refreshes it; replacing a triple by an identical one (same ``extra``) is
        a no-op and reports nothing. Returns the triples actually added.
        """
        policy = on_duplicate or self.on_duplicate
        if policy not in _DUPLICATE_POLICIES:
            raise KBValidationError(f"on_duplicate must be one of {_DUPLICATE_POLICIES}, got {policy!r}", field="on_duplicate")
        triples = [self._coerce(t, i) for i, t in enumerate(items)]
        with self._lock:
            added: list[Triple] = []
            removed: list[Triple] = []
            seen: dict[str, Triple] = {}
            for i, t in enumerate(triples):
                if t.id in self._triples or t.id in seen:
                    if policy == "error":
                        raise DuplicateTripleError("triple already in the knowledge base", record=f"#{i} {t}")
                    if policy == "ignore":
                        continue
                    if t.id in self._triples and t.id not in seen:
                        if dict(self._triples[t.id].extra) == dict(t.extra):
                            continue  # replacing a triple by an identical one changes nothing
                        removed.append(self._triples[t.id])
                seen[t.id] = t
            for t in removed:
                self._remove_edge(t)
            for t in seen.values():
                self._insert(t)
                added.append(t)
            if added or removed:
                self._emit(tuple(added), tuple(removed))
            return added

    def remove(self, item: Triple | str | tuple) -> Triple:
        """Remove a triple (by Triple, id, or (name, property, value))."""
        return self.remove_many([item])[0]

    def remove_many(self, items: Iterable[Triple | str | tuple]) -> list[Triple]:
        """Remove several triples atomically: if one is missing, none is removed.

        Naming the same triple twice removes (and reports) it once.
        """
        with self._lock:
            targets = list({t.id: t for t in (self._resolve(i) for i in items)}.values())
            for t in targets:
                self._remove_edge(t)
                del self._triples[t.id]
            if targets:
                self._emit((), tuple(targets))
            return targets

    def update(self, item: Triple | str | tuple, value: str, **extra: Any) -> Triple:
        """Replace a triple's value and/or merge new ``extra`` fields into it.

        Reported as one change with the old triple removed and the new one added (an
        update that changes nothing reports nothing). If the new value makes the triple
        equal to another fact already in the KB, the KB's duplicate policy decides:
        ``"error"`` raises :class:`DuplicateTripleError` and changes nothing,
        ``"ignore"`` keeps the existing fact and just drops the old one, ``"replace"``
        overwrites the existing fact (it is then reported as removed too).
        """
        with self._lock:
            old = self._resolve(item)
            new = Triple(old.name, old.property, value, {**dict(old.extra), **extra})
            if new.id == old.id:
                if dict(new.extra) == dict(old.extra):
                    return old
                self._remove_edge(old)
                self._insert(new)
                self._emit((new,), (old,))
                return new
            existing = self._triples.get(new.id)
            if existing is not None and self.on_duplicate == "error":
                raise DuplicateTripleError(f"updating {old} would duplicate a triple already in the knowledge base",
                                           record=str(new))
            self._remove_edge(old)
            del self._triples[old.id]
            if existing is not None and self.on_duplicate == "ignore":
                self._emit((), (old,))
                return existing
            removed = (old,) if existing is None else (old, existing)
            if existing is not None:
                self._remove_edge(existing)
            self._insert(new)
            self._emit((new,), removed)
            return new

    def clear(self) -> None:
        with self._lock:
            removed = tuple(self._triples.values())
            self._triples.clear()
            self.graph.clear()
            if removed:
                self._emit((), removed)

    def _resolve(self, item: Triple | str | tuple) -> Triple:
        if isinstance(item, Triple):
            key = item.id
        elif isinstance(item, str):
            key = item
        elif isinstance(item, (tuple, list)) and len(item) == 3:
            key = self._coerce(tuple(item)).id
        else:
            raise KBValidationError(f"cannot identify a triple from {type(item).__name__}")
        if key not in self._triples:
            raise TripleNotFoundError(f"triple {item} is not in the knowledge base")
        return self._triples[key]

    def _insert(self, t: Triple) -> None:
        """Store ``t`` and its edge (replacing a triple with the same id); lock held."""
        self._triples[t.id] = t
        self.graph.add_edge(t.name, t.value, key=t.id, property=t.property)
        self.graph.nodes[t.name].setdefault("kind", "entity")
        self.graph.nodes[t.value].setdefault("kind", "value")

    def _remove_edge(self, t: Triple) -> None:
        self.graph.remove_edge(t.name, t.value, key=t.id)
        for node in (t.name, t.value):
            if node in self.graph and self.graph.degree(node) == 0:
                self.graph.remove_node(node)

    # ------------------------------------------------------------ notification
    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(change)`` after every mutation; returns an unsubscribe function."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def _emit(self, added: tuple[Triple, ...], removed: tuple[Triple, ...]) -> None:
        """Tell every listener; one failing listener must not starve the others.

        Listeners run under the KB lock, in mutation order, so they see versions in
        sequence. If a listener raises, the remaining ones are still called and the first
        error is then re-raised to the caller; the mutation itself has already happened.
        """
        self.version += 1
        change = KBChange(added=added, removed=removed, version=self.version)
        error: BaseException | None = None
        for listener in list(self._listeners):
            try:
                listener(change)
            except Exception as exc:  # noqa: BLE001 - re-raised below once all listeners ran
                if error is None:
                    error = exc
        if error is not None:
            raise error

    @classmethod
    def from_documents(cls, documents: Iterable[Any] | Any, *, extractor: Any = None, spacy_model: str | None = None,
                       on_duplicate: OnDuplicate = "ignore", show_progress: bool = False) -> "KnowledgeBase":
        """A KB from LangChain ``Document`` / LlamaIndex ``Document``/``TextNode`` objects (duck-typed).

        A document that carries a triple in its metadata (what ``KBLaMTextLoader`` and
        ``KBLaMReader`` produce) is taken as that triple; any other is run through the spaCy
        :class:`~.extraction.TripleExtractor` (``extractor`` or ``spacy_model``), and every
        triple extracted from it keeps the document's scalar metadata (``source``, ``page``,
        ...) in its ``extra``. Paths and raw texts may be mixed in (see :mod:`.loaders`).
        """
        from .loaders import triples_from_documents

        return cls(triples_from_documents(documents, extractor=extractor, model=spacy_model,
                                          show_progress=show_progress), on_duplicate=on_duplicate)

    # ------------------------------------------------------------- persistence
    def to_dict(self) -> dict[str, Any]:
        return {"triples": [t.to_dict() for t in self]}

    def save(self, path: str | Path, format: str | None = None) -> Path:
        """Write atomically as JSON, JSON Lines or GraphML (chosen by suffix or ``format``).

        Writes one :meth:`snapshot`, so other threads may keep changing the KB meanwhile:
        the file holds one consistent version."""
        _, triples = self.snapshot()
        return save_triples(triples, path, format)

    @classmethod
    def load(cls, path: str | Path, format: str | None = None, *, on_duplicate: OnDuplicate = "ignore") -> "KnowledgeBase":
        """Read a KB file (JSON, JSON Lines or GraphML; see :mod:`.file_formats`).

        Raises :class:`KBFormatError` naming the file, record and field of the problem
        (:class:`~.file_formats.KBFileNotFoundError`, also a ``FileNotFoundError``, for a
        missing file), or :class:`DuplicateTripleError` for a repeated triple under
        ``on_duplicate="error"``.
        """
        return cls(load_triples(path, format), on_duplicate=on_duplicate)

    def load_into(self, path: str | Path, format: str | None = None, *,
                  on_duplicate: OnDuplicate | None = None) -> list[Triple]:
        """Add the triples of a file to this KB; on any error the KB is left untouched.

        The whole file is parsed and validated before anything is added, and
        :meth:`add_many` is itself all-or-nothing, so a corrupt file (or a duplicate
        under ``on_duplicate="error"``) never leaves the KB half-loaded.
        """
        return self.add_many(load_triples(path, format), on_duplicate=on_duplicate)
