"""Turn the ``kb=`` argument of the integrations into a live KB bound to a model.

Accepted (:func:`resolve_kb`):

* ``None`` — no knowledge base: the model is exactly its backbone;
* a :class:`~kblam_integrations.kb.knowledge_base.KnowledgeBase` — tracked live;
* a :class:`~kblam_integrations.encoding.manager.KBManager` — used as is when it was
  built with the model's encoder (or identical adapters), otherwise its KB is tracked
  by a new manager for the model;
* a path (``str``/``PathLike``) to a KB file written by ``KnowledgeBase.save``
  (``.json``, ``.jsonl``, ``.graphml``) or to an encoded KB written by
  ``KBManager.save`` (``.safetensors``, reloaded without re-encoding when the
  fingerprint matches, re-encoded from its stored triples otherwise);
* an iterable of triples (:class:`Triple`, ``(name, property, value)`` tuples or
  ``{"name", "property", "value"}`` dicts), or a ``{"triples": [...]}`` mapping;
* a :class:`~kblam_integrations.encoding.manager.KBTokens` snapshot (static).

Resolution is eager and needs no model, so a missing or corrupt file fails when the
chat model is built, with a typed error and nothing half-loaded. Binding to a model
(:meth:`KBSource.bind`) happens at the first call; the resulting :class:`KBManager`
re-encodes only triples that changed, and :meth:`KBSource.snapshot` gives each call
one consistent, immutable KB version.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import weakref
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import CacheMismatchError, ConfigError, KBFormatError, KBLaMError, KBValidationError
from ..kb.knowledge_base import KnowledgeBase
from ..kb.triple import Triple

if TYPE_CHECKING:  # pragma: no cover
    from ..encoding.manager import KBManager, KBTokens
    from ..model.kblam_model import KBLaMModel

logger = logging.getLogger(__name__)

from ..kb.persistence import KB_FILE_SUFFIXES

__all__ = ["ENCODED_KB_SUFFIX", "KB_FILE_SUFFIXES", "KBSource", "resolve_kb"]

ENCODED_KB_SUFFIX = ".safetensors"
def _read_encoded_header(path: Path) -> list[Triple]:
    """The triples of an encoded-KB file (its tokens are verified when the model loads it)."""
    from ..encoding.manager import read_cached_triples

    return read_cached_triples(path)


def _load_kb_file(path: Path) -> KnowledgeBase:
    try:
        return KnowledgeBase.load(path)
    except KBLaMError:
        raise
    except ImportError:
        raise
    except Exception as exc:  # noqa: BLE001 - any read/parse failure is a format error
        raise KBFormatError(f"cannot read knowledge base: {type(exc).__name__}: {exc}", path=path) from exc


class KBSource:
    """A resolved ``kb=`` argument; binds lazily to a model and hands out snapshots.

    ``kind`` is one of ``"none"``, ``"knowledge_base"``, ``"manager"``, ``"file"``,
    ``"encoded"``, ``"triples"``, ``"tokens"``.
    """

    def __init__(self, kind: str, *, kb: KnowledgeBase | None = None, manager: "KBManager | None" = None,
                 tokens: "KBTokens | None" = None, path: Path | None = None,
                 stored_triples: list[Triple] | None = None):
        self.kind = kind
        self.path = path
        self._kb = kb
        self._manager = manager
        self._tokens = tokens
        self._stored = stored_triples
        self._bound: "weakref.WeakKeyDictionary[Any, KBManager]" = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._fingerprint: tuple[Any, str] | None = None

    def __repr__(self) -> str:
        where = f" {str(self.path)!r}" if self.path is not None else ""
        return f"KBSource({self.kind}{where})"

    @property
    def knowledge_base(self) -> KnowledgeBase | None:
        """The live KB (None without one; for an encoded file, only once bound to a model)."""
        if self._manager is not None:
            return self._manager.kb
        if self._kb is not None:
            return self._kb
        for manager in list(self._bound.values()):
            return manager.kb
        return None

    def current_triples(self) -> tuple[Triple, ...]:
        """The triples as they are now, without a model (an encoded file's stored triples before binding)."""
        kb = self.knowledge_base
        if kb is not None:
            return kb.snapshot()[1]
        if self._tokens is not None:
            return tuple(self._tokens.triples)
        return tuple(self._stored or ())

    def fingerprint(self) -> str:
        """A digest of the triples as they are now (``"none"`` without a KB): equal KB contents,
        equal fingerprints, in any process. Cache keys use it, so an edit invalidates a cached
        answer and a KB edited back to an earlier state finds it again."""
        if self.kind == "none":
            return "none"
        kb = self.knowledge_base
        if kb is not None:
            key: Any = (id(kb), kb.version)
            cached = self._fingerprint
            if cached is not None and cached[0] == key:
                return cached[1]
            triples = kb.snapshot()[1]
        else:
            key, triples = None, self.current_triples()
        digest = hashlib.sha1("\n".join(sorted(t.id for t in triples)).encode()).hexdigest()[:20]
        if key is not None:
            self._fingerprint = (key, digest)
        return digest

    @property
    def version(self) -> int | None:
        """The live KB's version (None without a KB, or for an encoded file not yet bound)."""
        kb = self.knowledge_base
        if kb is not None:
            return kb.version
        return self._tokens.version if self._tokens is not None else None

    def to_config(self) -> str | dict[str, Any] | None:
        """What recreates this KB elsewhere, JSON-serialisable: the file it was read from (its
        path), else its current triples inline (``{"triples": [...]}``); None without a KB."""
        if self.kind == "none":
            return None
        if self.path is not None:
            return str(self.path)
        return {"triples": [t.to_dict() for t in self.current_triples()]}

    @property
    def needs_model_for_kb(self) -> bool:
        """True when :attr:`knowledge_base` is only available after :meth:`bind` (encoded files)."""
        return self.kind == "encoded" and self.knowledge_base is None

    # ---------------------------------------------------------------- binding
    def bind(self, model: "KBLaMModel") -> "KBManager | None":
        """The :class:`KBManager` that keeps this KB's tokens for ``model`` (created once per model)."""
        if self.kind in ("none", "tokens"):
            return None
        with self._lock:
            manager = self._bound.get(model)
            if manager is None:
                manager = self._make_manager(model)
                self._bound[model] = manager
            return manager

    def _make_manager(self, model: "KBLaMModel") -> "KBManager":
        if self._manager is not None:
            given = self._manager
            if given.encoder is model.encoder or given.encoder.fingerprint == model.encoder.fingerprint:
                return given
            logger.warning("the KBManager passed as kb= was built for other adapters/encoder; its knowledge base "
                           "is tracked by a new manager for this model (all triples are re-encoded once)")
            return model.kb_manager(given.kb)
        if self.kind == "encoded":
            assert self.path is not None
            try:
                return model.load_kb(self.path)
            except CacheMismatchError as exc:
                logger.warning("%s; re-encoding its %d stored triples", exc, len(self._stored or ()))
                return model.kb_manager(KnowledgeBase(self._stored or ()))
        assert self._kb is not None
        return model.kb_manager(self._kb)

    def snapshot(self, model: "KBLaMModel") -> "KBTokens | None":
        """One consistent, immutable KB version for a call (None: no KB)."""
        if self.kind == "none":
            return None
        if self.kind == "tokens":
            tokens = self._tokens
        else:
            manager = self.bind(model)
            # KBManager.snapshot() takes its own lock, then the KB's; a KB mutation holds the KB's
            # lock while notifying the manager (which takes the manager's lock). Taking the KB's
            # (reentrant) lock first keeps one lock order and avoids that deadlock.
            kb_lock = getattr(manager.kb, "_lock", None)
            if kb_lock is not None:
                with kb_lock:
                    tokens = manager.snapshot()
            else:
                tokens = manager.snapshot()
        _check_token_shape(tokens, model)
        return tokens


def _check_token_shape(tokens: "KBTokens | None", model: "KBLaMModel") -> None:
    if tokens is None or len(tokens) == 0:
        return
    expected = (len(model.config.kb_layers), model.config.kb_dim)
    if tuple(tokens.keys.shape[1:]) != expected:
        raise ConfigError(f"knowledge tokens of shape {tuple(tokens.keys.shape[1:])} do not fit this model "
                          f"(expects [N, {expected[0]}, {expected[1]}]); encode the KB with this model")


def resolve_kb(kb: Any) -> KBSource:
    """Validate and resolve a ``kb=`` argument (see the module docstring); raises typed errors."""
    from ..encoding.manager import KBManager, KBTokens

    if kb is None:
        return KBSource("none")
    if isinstance(kb, KBSource):
        return kb
    if isinstance(kb, KnowledgeBase):
        return KBSource("knowledge_base", kb=kb)
    if isinstance(kb, KBManager):
        return KBSource("manager", manager=kb)
    if isinstance(kb, KBTokens):
        return KBSource("tokens", tokens=kb)
    if isinstance(kb, (str, os.PathLike)):
        return _resolve_path(Path(kb).expanduser())
    if isinstance(kb, Triple):
        return KBSource("triples", kb=KnowledgeBase([kb]))
    if isinstance(kb, Mapping):
        if "triples" not in kb:
            raise KBValidationError("a mapping passed as kb= must be {'triples': [...]}", field="kb")
        kb = kb["triples"]
    if isinstance(kb, (bytes, bytearray)) or not isinstance(kb, Iterable):
        raise KBValidationError(
            f"kb= must be a KnowledgeBase, a KBManager, a path to a KB file or a list of triples, "
            f"got {type(kb).__name__}", field="kb")
    return KBSource("triples", kb=KnowledgeBase(list(kb)))


def _resolve_path(path: Path) -> KBSource:
    if not path.exists():
        raise KBFormatError("knowledge-base file not found", path=path)
    if not path.is_file():
        raise KBFormatError("knowledge-base path is not a file", path=path)
    suffix = path.suffix.lower()
    if suffix == ENCODED_KB_SUFFIX:
        triples = _read_encoded_header(path)
        return KBSource("encoded", path=path, stored_triples=triples)
    if suffix not in KB_FILE_SUFFIXES:
        raise KBFormatError(f"unsupported knowledge-base file type {suffix or '(none)'!r}; expected one of "
                            f"{', '.join(KB_FILE_SUFFIXES)} (KnowledgeBase.save) or {ENCODED_KB_SUFFIX} "
                            "(KBManager.save)", path=path)
    return KBSource("file", kb=_load_kb_file(path), path=path)
