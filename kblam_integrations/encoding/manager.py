"""``KBManager``: a knowledge base, its knowledge tokens, and keeping the two in step.

The manager subscribes to the KB's change notifications. Changes are queued and
applied lazily at the next :meth:`KBManager.snapshot`: only added/updated triples
are encoded, removed ones are dropped. Each snapshot is immutable (new tensors are
built rather than written in place), so a call in flight keeps a consistent KB
version while the KB keeps changing.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..errors import CacheMismatchError, KBFormatError
from ..kb.knowledge_base import KBChange, KnowledgeBase
from ..kb.triple import Triple
from .kb_encoder import KBEncoder


def empty_tokens(n: int, layers: int, dim: int, *, dtype: torch.dtype = torch.float16,
                 device: torch.device | str | None = None) -> torch.Tensor:
    """Uninitialised knowledge tokens ``[n, layers, dim]`` stored **layer-major**.

    The tensor is a transposed view of ``[layers, n, dim]`` storage, so indexing by
    triple (``t[i]``) works as for any ``[n, layers, dim]`` tensor while each KB layer's
    slice ``t[:, j]`` is one contiguous block: attention streams it sequentially and
    never needs a per-layer copy.
    """
    return torch.empty(layers, n, dim, dtype=dtype, device=device).transpose(0, 1)


def is_layer_major(t: torch.Tensor) -> bool:
    """Whether ``t[:, j]`` is contiguous for every layer ``j`` (see :func:`empty_tokens`)."""
    return t.dim() == 3 and t.transpose(0, 1).is_contiguous()


def layer_major(t: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``t`` itself if already layer-major (and of ``dtype``), else a layer-major copy."""
    dtype = dtype or t.dtype
    if is_layer_major(t) and t.dtype == dtype:
        return t
    out = empty_tokens(t.shape[0], t.shape[1], t.shape[2], dtype=dtype, device=t.device)
    for j in range(t.shape[1]):  # one layer at a time: no full-size temporary
        out[:, j] = t[:, j]
    return out


@dataclass(frozen=True)
class KBTokens:
    """An immutable, consistent view: triples[i] owns keys[i] / values[i].

    ``keys``/``values`` are ``[N, n_kb_layers, kb_dim]``; the encoder stores them
    layer-major (:func:`empty_tokens`), but any layout works.
    """

    version: int
    triples: tuple[Triple, ...]
    keys: torch.Tensor
    values: torch.Tensor

    def __len__(self) -> int:
        return len(self.triples)


class KBManager:
    """Own a :class:`KnowledgeBase` and its encoded knowledge tokens.

    Args:
        kb: the knowledge base to track (a new empty one if None).
        encoder: the :class:`KBEncoder` (sentence encoder + trained adapters).
        dtype: storage dtype of the tokens (fp16 default; bf16 or fp32 possible).
    """

    def __init__(self, kb: KnowledgeBase | None, encoder: KBEncoder, *, dtype: torch.dtype = torch.float16):
        self.kb = kb if kb is not None else KnowledgeBase()
        self.encoder = encoder
        self.dtype = dtype
        self._lock = threading.RLock()
        self._pending: list[KBChange] = []
        layers, dim = encoder.adapters.num_kb_layers, encoder.adapters.kb_dim
        self._snapshot = KBTokens(-1, (), empty_tokens(0, layers, dim, dtype=dtype),
                                  empty_tokens(0, layers, dim, dtype=dtype))
        self._unsubscribe = self.kb.subscribe(self._on_change)
        self._needs_full = True

    # ------------------------------------------------------------------ syncing
    def _on_change(self, change: KBChange) -> None:
        with self._lock:
            self._pending.append(change)

    def snapshot(self) -> KBTokens:
        """Knowledge tokens for the KB as it is now (encodes pending changes first)."""
        # Same lock order as a KB mutation notifying us (KB lock, then ours): no deadlock.
        with self.kb._lock, self._lock:
            version, triples = self.kb.snapshot()
            if self._needs_full:
                self._pending.clear()
                keys, values = self.encoder.encode(triples, dtype=self.dtype)
                self._snapshot = KBTokens(version, triples, keys, values)
                self._needs_full = False
            elif self._snapshot.version != version:
                self._pending.clear()
                self._snapshot = self._apply(version, triples)
            return self._snapshot

    def _apply(self, version: int, triples: tuple[Triple, ...]) -> KBTokens:
        old = self._snapshot
        row = {t.id: i for i, t in enumerate(old.triples)}
        keep_rows = [row[t.id] for t in triples if t.id in row]
        new = [t for t in triples if t.id not in row]
        new_k, new_v = self.encoder.encode(new, dtype=self.dtype)
        index = torch.tensor(keep_rows, dtype=torch.long)
        kept = [t for t in triples if t.id in row]
        # A new tensor (the old snapshot may still be in use), filled layer by layer: no
        # intermediate copy of the kept tokens.
        keys = _gather_and_append(old.keys, index, new_k, self.dtype)
        values = _gather_and_append(old.values, index, new_v, self.dtype)
        return KBTokens(version, tuple(kept) + tuple(new), keys, values)

    def refresh(self) -> None:
        """Re-encode everything (e.g. after the adapters changed)."""
        with self._lock:
            self._needs_full = True
        self.snapshot()

    def close(self) -> None:
        """Stop tracking the KB."""
        self._unsubscribe()

    def __len__(self) -> int:
        return len(self.kb)

    # -------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike) -> Path:
        """Write the encoded KB (tokens + triples + encoder fingerprint) atomically as safetensors."""
        snap = self.snapshot()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        metadata = {
            "format": "kblam-encoded-kb/1",
            "fingerprint": self.encoder.fingerprint,
            "triples": json.dumps([t.to_dict() for t in snap.triples], ensure_ascii=False),
            "ids": json.dumps([t.id for t in snap.triples]),
        }
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            save_file({"keys": snap.keys.contiguous(), "values": snap.values.contiguous()}, tmp, metadata=metadata)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, encoder: KBEncoder, *, dtype: torch.dtype | None = None) -> "KBManager":
        """Reload an encoded KB without re-encoding; refuses a cache made by other adapters/encoder."""
        path = Path(path)
        if not path.is_file():
            raise KBFormatError("encoded KB file not found", path=path)
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                keys, values = f.get_tensor("keys"), f.get_tensor("values")
        except Exception as exc:  # noqa: BLE001 - safetensors raises several types
            raise KBFormatError(f"not a readable safetensors file: {exc}", path=path) from exc
        if meta.get("format") != "kblam-encoded-kb/1":
            raise KBFormatError("not an encoded KB (missing format marker)", path=path, field="format")
        if meta.get("fingerprint") != encoder.fingerprint:
            raise CacheMismatchError(
                f"{path} was encoded by different adapters or a different sentence encoder "
                f"(cache fingerprint {meta.get('fingerprint')!r}, current {encoder.fingerprint!r}); re-encode it"
            )
        try:
            triples = [Triple.from_dict(r, index=i) for i, r in enumerate(json.loads(meta["triples"]))]
        except (KeyError, json.JSONDecodeError) as exc:
            raise KBFormatError("corrupt triple metadata", path=path, field="triples") from exc
        if len(triples) != keys.shape[0] or keys.shape != values.shape:
            raise KBFormatError("token and triple counts disagree", path=path, field="keys")
        kb = KnowledgeBase(triples)
        dtype = dtype or keys.dtype
        manager = cls(kb, encoder, dtype=dtype)
        version, current = kb.snapshot()
        order = {t.id: i for i, t in enumerate(triples)}
        index = torch.tensor([order[t.id] for t in current], dtype=torch.long)
        empty = torch.zeros(0, keys.shape[1], keys.shape[2], dtype=dtype)
        manager._snapshot = KBTokens(version, current, _gather_and_append(keys, index, empty, dtype),
                                     _gather_and_append(values, index, empty, dtype))
        manager._needs_full = False
        return manager


def _gather_and_append(old: torch.Tensor, index: torch.Tensor, new: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Layer-major ``cat([old[index], new])`` in ``dtype``, written straight into the result."""
    k = index.numel()
    out = empty_tokens(k + new.shape[0], old.shape[1], old.shape[2], dtype=dtype, device=old.device)
    for j in range(old.shape[1]):  # one layer at a time: temporaries are one layer's slice at most
        if k and old.dtype == dtype:
            torch.index_select(old[:, j], 0, index, out=out[:k, j])
        elif k:
            out[:k, j] = old[:, j].index_select(0, index)
        if new.shape[0]:
            out[k:, j] = new[:, j]
    return out
