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

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..errors import CacheIntegrityError, CacheMismatchError, KBFormatError, KBLaMError, KBValidationError
from ..kb.knowledge_base import KBChange, KnowledgeBase
from ..kb.triple import Triple
from ..model.limits import check_memory
from .kb_encoder import KBEncoder

#: Format marker of encoded-KB caches. Layout (one safetensors file, never pickle):
#:
#: * ``keys``, ``values``: ``[layers, N, kb_dim]`` float16/bfloat16/float32 (layer-major,
#:   as the tokens live in memory, so neither saving nor loading copies them);
#: * ``triples``: uint8, the UTF-8 JSON list of triple records, each with its ``id`` (a
#:   tensor, not the safetensors header, whose 100 MB cap would stop at ~430k triples);
#: * header: format, encoder fingerprint, count/layers/dim/dtype and the SHA-256 of
#:   each of the three tensors.
#:
#: :meth:`KBManager.load` verifies all of it, plus finiteness, ids against their text
#: and a re-encoded sample of triples against their stored tokens.
CACHE_FORMAT = "kblam-encoded-kb/2"
_TOKEN_DTYPES = {"F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32}
#: Triples re-encoded by :meth:`KBManager.load` to check that tokens belong to their triples.
VERIFY_SAMPLES = 8
#: Largest relative error between a stored and a re-encoded token (fp16/bf16 rounding is ~1e-3).
VERIFY_TOLERANCE = 0.05


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
                keys, values = self._encode(triples)
                self._snapshot = KBTokens(version, triples, keys, values)
                self._needs_full = False
            elif self._snapshot.version != version:
                self._snapshot = self._apply(version, triples)
            return self._snapshot

    def _encode(self, triples: Sequence[Triple]) -> tuple[torch.Tensor, torch.Tensor]:
        keys, values = self.encoder.encode(triples, dtype=self.dtype)
        for name, t in (("keys", keys), ("values", values)):
            bad = _first_non_finite(t)
            if bad is not None:
                raise KBValidationError(f"the encoder produced non-finite (NaN/inf) knowledge {name}",
                                        record=str(triples[bad]), field=name)
        return keys, values

    def _check_memory(self, new: int, kept: int) -> None:
        """Refuse up front an encode whose token tensors cannot fit (see :func:`check_memory`)."""
        layers, dim = self.encoder.adapters.num_kb_layers, self.encoder.adapters.kb_dim
        per_triple = 2 * layers * dim * torch.empty((), dtype=self.dtype).element_size()
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
        new_k, new_v = self._encode(new)
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
        """Write the encoded KB atomically as safetensors (format :data:`CACHE_FORMAT`).

        Tokens, triple records (with ids) and checksums go in one file, so that
        :meth:`load` can prove the tokens are the ones saved, for these triples, by this
        encoder. The write goes through a temporary file renamed over ``path``.
        """
        from ..kb.persistence import atomic_write_with

        snap = self.snapshot()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        records = []
        for i, t in enumerate(snap.triples):
            record = {**t.to_dict(), "id": t.id}
            try:
                json.dumps(record)
            except (TypeError, ValueError, RecursionError) as exc:
                raise KBValidationError(f"extra field cannot be stored as JSON: {exc}", record=f"#{i} {t}") from exc
            records.append(record)
        blob = json.dumps(records, ensure_ascii=True).encode("ascii")
        tensors = {
            # [layers, N, dim]: a view, not a copy, of layer-major tokens
            "keys": snap.keys.transpose(0, 1).contiguous(),
            "values": snap.values.transpose(0, 1).contiguous(),
            "triples": torch.frombuffer(bytearray(blob), dtype=torch.uint8),
        }
        metadata = {
            "format": CACHE_FORMAT,
            "fingerprint": self.encoder.fingerprint,
            "encoder": self.encoder.encoder_name,
            "count": str(len(snap.triples)),
            "layers": str(snap.keys.shape[1]),
            "dim": str(snap.keys.shape[2]),
            "dtype": str(snap.keys.dtype).replace("torch.", ""),
            **{f"sha256_{name}": _sha256(t) for name, t in tensors.items()},
        }
        return atomic_write_with(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))

    @classmethod
    def load(cls, path: str | os.PathLike, encoder: KBEncoder, *, dtype: torch.dtype | None = None,
             kb: KnowledgeBase | None = None, verify_samples: int = VERIFY_SAMPLES) -> "KBManager":
        """Reload an encoded KB without re-encoding it, after verifying it.

        Refused with a typed error naming what differs:
        :class:`CacheMismatchError` when the cache was made by other adapters or another
        sentence encoder (fingerprint over their weights and config) or does not hold
        exactly the triples of ``kb`` (when given: the manager then tracks that KB);
        :class:`CacheIntegrityError` (also a :class:`KBFormatError`) for a cache that is
        corrupt or was edited: unknown/old format, bad header, wrong tensor names, shape
        or dtype, checksum mismatch, NaN/inf tokens, malformed or duplicate triple
        records, ids that do not match their text, or a re-encoded sample of
        ``verify_samples`` triples that does not match the stored tokens (0 skips that).
        """
        path = Path(path)
        if not path.is_file():
            raise KBFormatError("encoded KB file not found", path=path)
        meta, tensors = _read_cache(path, encoder)
        count = _meta_int(meta, "count", path)
        keys_lm, values_lm, blob = tensors["keys"], tensors["values"], tensors["triples"]
        for name, t in tensors.items():
            if _sha256(t) != meta.get(f"sha256_{name}"):
                raise CacheIntegrityError(f"checksum mismatch: the {name} tensor changed after it was saved",
                                          path=path, field=name)
        for name, t in (("keys", keys_lm), ("values", values_lm)):
            bad = _first_non_finite(t.transpose(0, 1))
            if bad is not None:
                raise CacheIntegrityError(f"non-finite (NaN/inf) {name} for triple #{bad}", path=path, field=name)
        triples = _parse_records(blob, count, path)
        keys, values = keys_lm.transpose(0, 1), values_lm.transpose(0, 1)  # [N, L, D], layer-major
        if verify_samples > 0 and triples:
            _spot_check(encoder, triples, keys, values, verify_samples, path)
        if kb is not None:
            _check_same_triples(kb, triples, path)
        else:
            kb = KnowledgeBase(triples)
        dtype = dtype or keys.dtype
        manager = cls(kb, encoder, dtype=dtype)
        version, current = kb.snapshot()
        if [t.id for t in current] == [t.id for t in triples]:
            k, v = layer_major(keys, dtype), layer_major(values, dtype)
        else:
            order = {t.id: i for i, t in enumerate(triples)}
            index = torch.tensor([order[t.id] for t in current], dtype=torch.long)
            empty = torch.zeros(0, keys.shape[1], keys.shape[2], dtype=dtype)
            k = _gather_and_append(keys, index, empty, dtype)
            v = _gather_and_append(values, index, empty, dtype)
        manager._snapshot = KBTokens(version, current, k, v)
        manager._needs_full = False
        return manager


# ------------------------------------------------------------------ cache checks
def _sha256(t: torch.Tensor) -> str:
    """SHA-256 of a tensor's bytes (native dtype, C order)."""
    t = t.detach().cpu().contiguous().reshape(-1)
    return hashlib.sha256(t.view(torch.uint8).numpy()).hexdigest() if t.numel() else hashlib.sha256().hexdigest()


def _first_non_finite(t: torch.Tensor) -> int | None:
    """Index (dim 0) of the first triple with a NaN/inf token, layer by layer (no full-size mask)."""
    if t.numel() == 0:
        return None
    for j in range(t.shape[1]):
        ok = torch.isfinite(t[:, j]).all(dim=-1)
        if not bool(ok.all()):
            return int((~ok).nonzero()[0, 0])
    return None


def _meta_int(meta: dict, key: str, path: Path) -> int:
    try:
        value = int(meta[key])
    except (KeyError, TypeError, ValueError):
        raise CacheIntegrityError(f"missing or invalid {key!r} in the header", path=path, field=key) from None
    if value < 0:
        raise CacheIntegrityError(f"negative {key!r} in the header", path=path, field=key)
    return value


def _read_cache(path: Path, encoder: KBEncoder) -> tuple[dict, dict[str, torch.Tensor]]:
    """Header checks (format, fingerprint, names, shapes, dtypes) before any tensor is read."""
    adapters = encoder.adapters
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            fmt = meta.get("format")
            if fmt != CACHE_FORMAT:
                if isinstance(fmt, str) and fmt.startswith("kblam-encoded-kb/"):
                    raise CacheIntegrityError(f"cache format {fmt!r} has no integrity data (this release reads "
                                              f"{CACHE_FORMAT!r}); re-encode it with `kblam encode`",
                                              path=path, field="format")
                raise CacheIntegrityError("not an encoded KB (missing format marker)", path=path, field="format")
            if meta.get("fingerprint") != encoder.fingerprint:
                raise CacheMismatchError(
                    f"{path} was encoded by different adapters or a different sentence encoder "
                    f"(cache fingerprint {meta.get('fingerprint')!r} from encoder {meta.get('encoder')!r}, "
                    f"current {encoder.fingerprint!r} from {encoder.encoder_name!r}); re-encode it")
            names = set(f.keys())
            if names != {"keys", "values", "triples"}:
                raise CacheIntegrityError(f"expected the tensors keys, values and triples, found {sorted(names)}",
                                          path=path, field="tensors")
            count = _meta_int(meta, "count", path)
            want = [adapters.num_kb_layers, count, adapters.kb_dim]
            for name in ("keys", "values"):
                sl = f.get_slice(name)
                shape, dt = list(sl.get_shape()), sl.get_dtype()
                if shape != want:
                    raise CacheIntegrityError(
                        f"{name} has shape {shape}; expected [layers={want[0]}, triples={want[1]}, dim={want[2]}] "
                        f"for these adapters and the header's count", path=path, field=name)
                if dt not in _TOKEN_DTYPES:
                    raise CacheIntegrityError(f"{name} has dtype {dt}; expected one of {sorted(_TOKEN_DTYPES)}",
                                              path=path, field=name)
            sl = f.get_slice("triples")
            if sl.get_dtype() != "U8" or len(sl.get_shape()) != 1:
                raise CacheIntegrityError(f"triples must be a 1-D uint8 tensor, got {sl.get_dtype()} "
                                          f"{list(sl.get_shape())}", path=path, field="triples")
            if f.get_slice("keys").get_dtype() != f.get_slice("values").get_dtype():
                raise CacheIntegrityError("keys and values have different dtypes", path=path, field="values")
            check_memory(path.stat().st_size, "cpu", what=f"loading {path}")
            tensors = {name: f.get_tensor(name) for name in ("keys", "values", "triples")}
    except KBLaMError:
        raise
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types
        raise KBFormatError(f"not a readable safetensors file: {exc}", path=path) from exc
    return meta, tensors


def read_cached_triples(path: str | os.PathLike) -> list[Triple]:
    """The triples an encoded-KB file holds, checked (format, count, records), without reading its tokens.

    For callers that need the KB before a model is at hand; :meth:`KBManager.load` verifies
    the tokens themselves."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != CACHE_FORMAT:
                raise CacheIntegrityError(f"not an encoded KB of format {CACHE_FORMAT!r}", path=path, field="format")
            if not {"keys", "values", "triples"} <= set(f.keys()):
                raise CacheIntegrityError("expected the tensors keys, values and triples", path=path, field="tensors")
            count = _meta_int(meta, "count", path)
            for name in ("keys", "values"):
                shape = list(f.get_slice(name).get_shape())
                if len(shape) != 3 or shape[1] != count:
                    raise CacheIntegrityError(f"{name} has shape {shape}; the header says {count} triples",
                                              path=path, field=name)
            blob = f.get_tensor("triples")
    except KBLaMError:
        raise
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types
        raise KBFormatError(f"not a readable safetensors file: {exc}", path=path) from exc
    return _parse_records(blob, count, path)


def _parse_records(blob: torch.Tensor, count: int, path: Path) -> list[Triple]:
    try:
        records = json.loads(blob.numpy().tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CacheIntegrityError(f"triple records are not valid JSON: {exc}", path=path, field="triples") from None
    if not isinstance(records, list):
        raise CacheIntegrityError(f"triple records must be a list, got {type(records).__name__}",
                                  path=path, field="triples")
    if len(records) != count:
        raise CacheIntegrityError(f"{len(records)} triple records for {count} tokens", path=path, field="triples")
    triples, seen = [], set()
    for i, record in enumerate(records):
        try:
            t = Triple.from_dict(record, index=i)
        except KBValidationError as exc:
            raise CacheIntegrityError(f"invalid triple record: {exc}", path=path, record=f"#{i}",
                                      field=exc.field) from None
        stored = record.get("id")
        if stored != t.id:
            raise CacheIntegrityError(f"stored id {stored!r} does not match the triple's text {t} (id {t.id!r})",
                                      path=path, record=f"#{i}", field="id")
        if t.id in seen:
            raise CacheIntegrityError(f"duplicate triple {t}", path=path, record=f"#{i}", field="id")
        seen.add(t.id)
        triples.append(t)
    return triples


def _spot_check(encoder: KBEncoder, triples: list[Triple], keys: torch.Tensor, values: torch.Tensor,
                samples: int, path: Path) -> None:
    """Re-encode a few triples (spread over the KB, first and last included) and compare:
    catches permuted or edited records and tokens made by another encoder that the
    fingerprint cannot see. Costs ``samples`` triples of encoding."""
    n = len(triples)
    k = min(samples, n)
    rows = sorted({round(i * (n - 1) / max(1, k - 1)) for i in range(k)})
    counted = encoder.triples_encoded  # a check, not an encode of the KB: leave the counter alone
    try:
        fresh_k, fresh_v = encoder.encode([triples[i] for i in rows], dtype=torch.float32, show_progress=False)
    finally:
        encoder.triples_encoded = counted
    for name, stored, fresh in (("keys", keys, fresh_k), ("values", values, fresh_v)):
        s = stored[rows].float().to(fresh.device)
        err = (s - fresh).norm(dim=-1) / fresh.norm(dim=-1).clamp_min(1e-6)  # [k, layers]
        worst = err.max(dim=-1).values
        for r, e in zip(rows, worst.tolist()):
            if not e <= VERIFY_TOLERANCE:
                raise CacheIntegrityError(
                    f"the stored {name} of triple #{r} {triples[r]} do not match its text re-encoded now "
                    f"(relative error {e:.3g}): records and tokens were permuted or edited, or another encoder "
                    f"made them; re-encode the KB", path=path, record=f"#{r}", field=name)


def _check_same_triples(kb: KnowledgeBase, triples: list[Triple], path: Path) -> None:
    _, current = kb.snapshot()
    have = {t.id: t for t in triples}
    want = {t.id: t for t in current}
    missing = [t for i, t in want.items() if i not in have]
    extra = [t for i, t in have.items() if i not in want]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} KB triple(s) not in the cache, e.g. {missing[0]}")
        if extra:
            parts.append(f"{len(extra)} cached triple(s) not in the KB, e.g. {extra[0]}")
        raise CacheMismatchError(f"the encoded KB {path} does not hold this KB's triples: {'; '.join(parts)}; "
                                 "re-encode it")


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
