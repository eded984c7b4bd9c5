"""``KBManager``: a knowledge base, its knowledge tokens, and keeping the two in step.

The manager subscribes to the KB's change notifications (it only notes that the KB
moved on: no change log grows while nobody reads it). The next
:meth:`KBManager.snapshot` diffs the KB against the tokens it has: only added/updated
triples are encoded, removed ones are dropped. Encoding runs *outside* the KB's lock,
so writers never wait for an encode. Each snapshot is immutable (new tensors are built
rather than written in place), so a call in flight keeps a consistent KB version while
the KB keeps changing.

Encoded-KB caches (:meth:`KBManager.save` / :meth:`KBManager.load`) are verified on
load; see :data:`CACHE_FORMAT`.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Sequence

import torch

from ..errors import KBValidationError
from ..kb.knowledge_base import KBChange, KnowledgeBase
from ..kb.triple import Triple
from ..memory import check_memory
from .cache_file import (CACHE_FORMAT, VERIFY_SAMPLES, first_non_finite, read_cache,  # noqa: F401 - re-exported
                         read_cached_triples, write_cache)
from .kb_encoder import KBEncoder
from .tokens import (KBTokens, absent_values, empty_tokens, gather_and_append, has_values,  # noqa: F401
                     is_layer_major, layer_major)

class KBManager:
    """Own a :class:`KnowledgeBase` and its encoded knowledge tokens.

    Args:
        kb: the knowledge base to track (a new empty one if None).
        encoder: the :class:`KBEncoder` (sentence encoder + trained adapters).
        dtype: storage dtype of the tokens (fp16 default; bf16 or fp32 possible).
        index: kind of :class:`~.key_index.KeyIndex` kept over the key embeddings
            (``"ivf"``, ``"flat"``) once the KB has ``index_min_size`` triples; None: never.
            It follows the KB: added triples are added to it, removed ones removed.
        store_values: False keeps keys only (:func:`~.tokens.absent_values`): for models that
            never read value tokens, half the encode time and memory.
    """

    def __init__(self, kb: KnowledgeBase | None, encoder: KBEncoder, *, dtype: torch.dtype = torch.float16,
                 index: str | None = None, index_min_size: int = 0, store_values: bool = True):
        self.kb = kb if kb is not None else KnowledgeBase()
        self.encoder = encoder
        self.dtype = dtype
        self.index_kind, self.index_min_size = index, index_min_size
        self.store_values = store_values
        self._next_id = 0
        self._lock = threading.RLock()  # one encode at a time; never held by a KB writer
        self._latest_version: int | None = None  # bounded: the last change seen, not a log
        layers, dim = encoder.adapters.num_kb_layers, encoder.adapters.kb_dim
        self._snapshot = KBTokens(-1, (), empty_tokens(0, layers, dim, dtype=dtype),
                                  empty_tokens(0, layers, dim, dtype=dtype))
        self._unsubscribe = self.kb.subscribe(self._on_change)
        self._needs_full = True

    # ------------------------------------------------------------------ syncing
    def _on_change(self, change: KBChange) -> None:
        # Runs under the KB's lock in the writer's thread: must never wait for an encode,
        # so it takes no lock and keeps O(1) state (the diff is done at snapshot time).
        self._latest_version = change.version

    @property
    def stale(self) -> bool:
        """Whether the KB changed since the last snapshot (the next one will encode)."""
        return self._needs_full or self._snapshot.version != self.kb.version

    def snapshot(self) -> KBTokens:
        """Knowledge tokens for the KB as it is now (encodes what changed first).

        The KB's lock is held only to copy its triple list; the encoding itself runs
        under the manager's own lock, so ``kb.add`` from another thread returns at once
        while a large KB is being encoded (it is picked up by the next snapshot).
        """
        with self._lock:
            version, triples = self.kb.snapshot()
            if self._needs_full:
                self._check_memory(len(triples), 0)
                keys, values, emb = self._encode(triples)
                ids = self._new_ids(len(triples))
                self._snapshot = KBTokens(version, triples, keys, values, emb, ids, self._build_index(emb, ids))
                self._needs_full = False
            elif self._snapshot.version != version:
                self._snapshot = self._apply(version, triples)
            return self._snapshot

    def _encode(self, triples: Sequence[Triple]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        keys, values, emb = self.encoder.encode_with_key_embeddings(triples, dtype=self.dtype,
                                                                    values=self.store_values)
        for name, t in (("keys", keys), ("values", values)):
            bad = first_non_finite(t)
            if bad is not None:
                raise KBValidationError(f"the encoder produced non-finite (NaN/inf) knowledge {name}",
                                        record=str(triples[bad]), field=name)
        return keys, values, emb

    def _new_ids(self, n: int) -> torch.Tensor:
        ids = torch.arange(self._next_id, self._next_id + n, dtype=torch.long)
        self._next_id += n
        return ids

    def _build_index(self, emb: torch.Tensor, ids: torch.Tensor):
        if self.index_kind is None or len(ids) < max(1, self.index_min_size):
            return None
        from .key_index import KeyIndex

        return KeyIndex.build(emb, ids, self.index_kind, metric=self.encoder.index_metric())

    def _check_memory(self, new: int, kept: int) -> None:
        """Refuse up front an encode whose token tensors cannot fit (see :func:`check_memory`)."""
        layers, dim = self.encoder.adapters.num_kb_layers, self.encoder.adapters.kb_dim
        tokens = (2 if self.store_values else 1) * layers * dim + self.encoder.adapters.encoder_dim
        per_triple = tokens * torch.empty((), dtype=self.dtype).element_size()
        needed = (new + kept) * per_triple
        if needed >= 64 * 2**20:  # small encodes always fit; skip the system call
            check_memory(needed, self.encoder.adapters.key.weight.device,
                         what=f"encoding {new + kept} triples ({layers} KB layers x {dim} dims)")

    def _apply(self, version: int, triples: tuple[Triple, ...]) -> KBTokens:
        old = self._snapshot
        row = {t.id: i for i, t in enumerate(old.triples)}
        keep_rows = [row[t.id] for t in triples if t.id in row]
        new = [t for t in triples if t.id not in row]
        self._check_memory(len(new), len(keep_rows))
        new_k, new_v, new_emb = self._encode(new)
        index = torch.tensor(keep_rows, dtype=torch.long)
        kept = [t for t in triples if t.id in row]
        # A new tensor (the old snapshot may still be in use), filled layer by layer: no
        # intermediate copy of the kept tokens.
        keys = gather_and_append(old.keys, index, new_k, self.dtype)
        values = gather_and_append(old.values, index, new_v, self.dtype)
        emb = ids = key_index = None
        if old.key_embeddings is not None and old.ids is not None:
            emb = torch.cat([old.key_embeddings.index_select(0, index), new_emb.to(old.key_embeddings.dtype)])
            new_ids = self._new_ids(len(new))
            ids = torch.cat([old.ids.index_select(0, index), new_ids])
            key_index = old.index
            if key_index is not None:
                gone = torch.ones(len(old.triples), dtype=torch.bool)
                gone[index] = False
                key_index.remove(old.ids[gone])
                key_index.add(new_emb, new_ids)
            else:
                key_index = self._build_index(emb, ids)
        return KBTokens(version, tuple(kept) + tuple(new), keys, values, emb, ids, key_index)

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
        """Write the encoded KB atomically (see :func:`~.cache_file.write_cache`)."""
        return write_cache(path, self.snapshot(), self.encoder)

    @classmethod
    def load(cls, path: str | os.PathLike, encoder: KBEncoder, *, dtype: torch.dtype | None = None,
             kb: KnowledgeBase | None = None, verify_samples: int = VERIFY_SAMPLES, index: str | None = None,
             index_min_size: int = 0) -> "KBManager":
        """Reload an encoded KB without re-encoding it, after verifying it (see
        :func:`~.cache_file.read_cache` for what is checked and the errors raised).
        With ``kb`` the manager tracks that KB, which must hold exactly the cached triples.
        ``index``/``index_min_size``: the index policy when the file holds no index (one is
        built from the stored key embeddings if the KB is big enough); a stored index is kept."""
        cached = read_cache(path, encoder, kb=kb, verify_samples=verify_samples)
        triples, keys, values = cached.triples, cached.keys, cached.values
        if kb is None:
            kb = KnowledgeBase(triples)
        dtype = dtype or keys.dtype
        manager = cls(kb, encoder, dtype=dtype, index=cached.index.kind if cached.index is not None else index,
                      index_min_size=index_min_size, store_values=has_values(values))
        version, current = kb.snapshot()
        emb, ids = cached.key_embeddings, cached.ids
        if [t.id for t in current] == [t.id for t in triples]:
            k = layer_major(keys, dtype)
            v = layer_major(values, dtype) if has_values(values) else absent_values(len(current), keys.shape[1],
                                                                                     keys.shape[2], dtype=dtype)
        else:
            order = {t.id: i for i, t in enumerate(triples)}
            index = torch.tensor([order[t.id] for t in current], dtype=torch.long)
            empty = torch.zeros(0, keys.shape[1], keys.shape[2], dtype=dtype)
            k = gather_and_append(keys, index, empty, dtype)
            v = gather_and_append(values, index, empty, dtype)
            if emb is not None:
                emb, ids = emb.index_select(0, index), ids.index_select(0, index)
        if ids is not None and len(ids):
            manager._next_id = int(ids.max()) + 1
        key_index = cached.index
        if key_index is None and emb is not None:
            key_index = manager._build_index(emb, ids)
        manager._snapshot = KBTokens(version, current, k, v, emb, ids, key_index)
        manager._needs_full = False
        return manager
