"""One call at a time per model: the lock that serializes ``generate``/``retrieve`` on a shared HF model.

Every wrapper over the same model object takes the same lock. Callers take their KB
snapshot *before* waiting for it, so every call sees the KB as it was when the call
started, whatever happens while it waits.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from ..encoding.manager import KBTokens
    from ..model.kblam_model import GenerationResult, KBLaMModel

__all__ = ["generate_locked", "model_lock", "retrieve_locked"]

_LOCKS: "weakref.WeakKeyDictionary[Any, threading.Lock]" = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def model_lock(model: Any) -> threading.Lock:
    """The lock that serializes generation on ``model`` (one per model object, shared by all wrappers)."""
    with _LOCKS_GUARD:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = _LOCKS[model] = threading.Lock()
        return lock


def generate_locked(model: "KBLaMModel", messages: Sequence[dict[str, str]], tokens: "KBTokens | None",
                    **options: Any) -> "GenerationResult":
    """``model.generate`` on an already-taken KB snapshot, serialized per model."""
    with model_lock(model):
        return model.generate(list(messages), kb=tokens, **options)


def retrieve_locked(model: "KBLaMModel", messages: Sequence[dict[str, str]] | str, tokens: "KBTokens | None",
                    k: int):
    """``model.retrieve`` (one prefill) on a KB snapshot, serialized per model."""
    with model_lock(model):
        return model.retrieve(messages if isinstance(messages, str) else list(messages), tokens, k=k)
