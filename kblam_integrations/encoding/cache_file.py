"""The encoded-KB file: writing it atomically and reading it back verified (see :data:`CACHE_FORMAT`)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable, NamedTuple

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..errors import CacheIntegrityError, CacheMismatchError, KBFormatError, KBLaMError, KBValidationError
from ..kb.knowledge_base import KnowledgeBase
from ..kb.triple import Triple
from ..memory import check_memory
from .kb_encoder import KBEncoder
from .key_index import INDEX_KINDS, KeyIndex
from .tokens import KBTokens, absent_values, has_values

#: Format marker of encoded-KB caches. Layout (one safetensors file, never pickle):
#:
#: * ``keys``, ``values``: ``[layers, N, kb_dim]`` float16/bfloat16/float32 (layer-major,
#:   as the tokens live in memory, so neither saving nor loading copies them);
#: * ``triples``: uint8, the UTF-8 JSON list of triple records, each with its ``id`` (a
#:   tensor, not the safetensors header, whose 100 MB cap would stop at ~430k triples);
#:   A KB stored keys-only (:func:`~.tokens.absent_values`) has ``values`` ``[layers, 0, kb_dim]``
#:   and the header ``values: absent``;
#: * ``key_embeddings`` ``[N, encoder_dim]`` and ``ids`` ``[N]`` int64 (format 3 on; absent in
#:   format 2 files, which still load, without an index);
#: * ``key_index``: uint8, the serialised faiss :class:`~.key_index.KeyIndex` (optional;
#:   header ``index_kind``); format 4 stores the embeddings divided by their key norm
#:   (``KeyIndex.metric``); a format-3 index of raw embeddings is rebuilt on load from the
#:   verified key embeddings;
#: * header: format, encoder fingerprint, count/layers/dim/dtype and the SHA-256 of
#:   each tensor.
#:
#: :func:`read_cache` verifies all of it, plus finiteness, ids against their text,
#: a re-encoded sample of triples against their stored tokens and key embeddings, and
#: the index against the ids and embeddings.
CACHE_FORMAT = "kblam-encoded-kb/4"
#: The last format whose index held the raw key embeddings (rebuilt on load).
_RAW_INDEX_FORMAT = "kblam-encoded-kb/3"
_READABLE_FORMATS = ("kblam-encoded-kb/2", _RAW_INDEX_FORMAT, CACHE_FORMAT)
_REQUIRED = {"keys", "values", "triples"}
_OPTIONAL = {"key_embeddings", "ids", "key_index"}
_TOKEN_DTYPES = {"F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32}
#: Triples re-encoded by :meth:`KBManager.load` to check that tokens belong to their triples.
VERIFY_SAMPLES = 8
#: Largest relative error between a stored and a re-encoded token (fp16/bf16 rounding is ~1e-3).
VERIFY_TOLERANCE = 0.05




def write_cache(path: str | os.PathLike, snap: KBTokens, encoder: KBEncoder) -> Path:
    """Write ``snap`` atomically as one safetensors file (format :data:`CACHE_FORMAT`).

    Tokens, triple records (with ids) and checksums go in one file, so that
    :func:`read_cache` can prove the tokens are the ones saved, for these triples, by
    this encoder. The write goes through a temporary file renamed over ``path``.
    """
    from ..kb.persistence import atomic_write_with

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
    stored_values = has_values(snap.values)
    values = snap.values if stored_values else snap.values[:0]
    tensors = {
        # [layers, N, dim]: a view, not a copy, of layer-major tokens
        "keys": snap.keys.transpose(0, 1).contiguous(),
        "values": values.transpose(0, 1).contiguous(),
        "triples": torch.frombuffer(bytearray(blob), dtype=torch.uint8),
    }
    if snap.key_embeddings is not None and snap.ids is not None:
        tensors["key_embeddings"] = snap.key_embeddings.contiguous()
        tensors["ids"] = snap.ids.contiguous()
    index_kind = {}
    if snap.index is not None:
        tensors["key_index"] = snap.index.to_tensor()
        index_kind = {"index_kind": snap.index.kind}
    metadata = {
        "format": CACHE_FORMAT,
        "fingerprint": encoder.fingerprint,
        "encoder": encoder.encoder_name,
        "count": str(len(snap.triples)),
        "layers": str(snap.keys.shape[1]),
        "dim": str(snap.keys.shape[2]),
        "dtype": str(snap.keys.dtype).replace("torch.", ""),
        **index_kind,
        **({} if stored_values else {"values": "absent"}),
        **{f"sha256_{name}": _sha256(t) for name, t in tensors.items()},
    }
    return atomic_write_with(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


class CachedKB(NamedTuple):
    triples: list[Triple]
    keys: torch.Tensor
    values: torch.Tensor
    key_embeddings: torch.Tensor | None
    ids: torch.Tensor | None
    index: KeyIndex | None


def read_cache(path: str | os.PathLike, encoder: KBEncoder, *, kb: KnowledgeBase | None = None,
               verify_samples: int = VERIFY_SAMPLES) -> CachedKB:
    """The triples, ``[N, layers, dim]`` keys/values (and key embeddings, ids, index when
    stored) of an encoded-KB file, verified.

    Refused with a typed error naming what differs:
    :class:`CacheMismatchError` when the cache was made by other adapters or another
    sentence encoder (fingerprint over their weights and config) or does not hold
    exactly the triples of ``kb`` (when given);
    :class:`CacheIntegrityError` (also a :class:`KBFormatError`) for a cache that is
    corrupt or was edited: unknown/old format, bad header, wrong tensor names, shape
    or dtype, checksum mismatch, NaN/inf tokens, malformed or duplicate triple
    records, ids that do not match their text, or a re-encoded sample of
    ``verify_samples`` triples that does not match the stored tokens (0 skips that).
    """
    path = Path(path)
    if not path.is_file():
        raise KBFormatError("encoded KB file not found", path=path)
    meta, tensors = _read_checked(path, encoder)
    count = _meta_int(meta, "count", path)
    keys_lm, values_lm, blob = tensors["keys"], tensors["values"], tensors["triples"]
    for name, t in tensors.items():
        if _sha256(t) != meta.get(f"sha256_{name}"):
            raise CacheIntegrityError(f"checksum mismatch: the {name} tensor changed after it was saved",
                                      path=path, field=name)
    for name, t in (("keys", keys_lm), ("values", values_lm)):
        bad = first_non_finite(t.transpose(0, 1))
        if bad is not None:
            raise CacheIntegrityError(f"non-finite (NaN/inf) {name} for triple #{bad}", path=path, field=name)
    triples = _parse_records(blob, count, path)
    keys, values = keys_lm.transpose(0, 1), values_lm.transpose(0, 1)  # [N, L, D], layer-major
    if meta.get("values") == "absent":
        values = absent_values(count, keys.shape[1], keys.shape[2], dtype=keys.dtype)
    emb, ids, index = _read_index_parts(meta, tensors, count, encoder, path)
    if verify_samples > 0 and triples:
        _spot_check(encoder, triples, keys, values, verify_samples, path, emb)
    if kb is not None:
        _check_same_triples(kb, triples, path)
    return CachedKB(triples, keys, values, emb, ids, index)


def _read_index_parts(meta: dict, tensors: dict, count: int, encoder: KBEncoder, path: Path):
    """Key embeddings, ids and index of a format-3/4 file (None for what is not stored), checked."""
    dim = encoder.adapters.encoder_dim
    emb, ids = tensors.get("key_embeddings"), tensors.get("ids")
    if (emb is None) != (ids is None):
        raise CacheIntegrityError("key_embeddings and ids are stored together", path=path, field="ids")
    if emb is None:
        if "key_index" in tensors:
            raise CacheIntegrityError("a key index without key embeddings", path=path, field="key_index")
        return None, None, None
    if list(emb.shape) != [count, dim] or first_non_finite(emb.unsqueeze(1)) is not None:
        raise CacheIntegrityError(f"key_embeddings must be finite with shape [{count}, {dim}], got "
                                  f"{list(emb.shape)}", path=path, field="key_embeddings")
    if ids.dtype != torch.int64 or list(ids.shape) != [count] or len(torch.unique(ids)) != count:
        raise CacheIntegrityError(f"ids must be {count} distinct int64 values", path=path, field="ids")
    index = None
    if "key_index" in tensors and meta.get("format") == _RAW_INDEX_FORMAT:
        # format 3 indexed the raw embeddings; the embeddings are verified, the index is derived from them
        kind = meta.get("index_kind", "")
        if kind not in INDEX_KINDS:
            raise CacheIntegrityError(f"unknown key index kind {kind!r}", path=path, field="key_index")
        index = KeyIndex.build(emb, ids, kind, metric=encoder.index_metric())
    elif "key_index" in tensors:
        try:
            index = KeyIndex.from_tensor(tensors["key_index"], meta.get("index_kind", ""), dim,
                                         metric=encoder.index_metric())
            index.verify(emb, ids)
        except CacheIntegrityError as exc:
            raise CacheIntegrityError(str(exc).split(" (")[0], path=path, field="key_index") from None
        except Exception as exc:  # noqa: BLE001 - faiss raises RuntimeError on a corrupt blob
            raise CacheIntegrityError(f"the key index cannot be read: {exc}", path=path, field="key_index") from None
    return emb, ids, index


def read_cached_triples(path: str | os.PathLike) -> list[Triple]:
    """The triples an encoded-KB file holds, checked (format, count, records), without reading its tokens.

    For callers that need the KB before a model is at hand; :func:`read_cache` verifies
    the tokens themselves."""
    path = Path(path)
    meta, blob = _open_cache(path, lambda f, meta: f.get_tensor("triples"))
    return _parse_records(blob, _meta_int(meta, "count", path), path)


# ------------------------------------------------------------------ checks
def _sha256(t: torch.Tensor) -> str:
    """SHA-256 of a tensor's bytes (native dtype, C order)."""
    t = t.detach().cpu().contiguous().reshape(-1)
    return hashlib.sha256(t.view(torch.uint8).numpy()).hexdigest() if t.numel() else hashlib.sha256().hexdigest()


def first_non_finite(t: torch.Tensor) -> int | None:
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


def _open_cache(path: Path, read: Callable):
    """Open an encoded-KB file, check the header every reader relies on (format, tensor
    names, token shapes against the count), then ``read(f, meta)``; errors are typed."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            fmt = meta.get("format")
            if fmt not in _READABLE_FORMATS:
                if isinstance(fmt, str) and fmt.startswith("kblam-encoded-kb/"):
                    raise CacheIntegrityError(f"cache format {fmt!r} has no integrity data (this release reads "
                                              f"{CACHE_FORMAT!r}); re-encode it with `kblam encode`",
                                              path=path, field="format")
                raise CacheIntegrityError("not an encoded KB (missing format marker)", path=path, field="format")
            names = set(f.keys())
            if not _REQUIRED <= names <= _REQUIRED | _OPTIONAL:
                raise CacheIntegrityError(f"expected the tensors keys, values and triples (and optionally "
                                          f"{', '.join(sorted(_OPTIONAL))}), found {sorted(names)}",
                                          path=path, field="tensors")
            count = _meta_int(meta, "count", path)
            for name in ("keys", "values"):
                shape = list(f.get_slice(name).get_shape())
                rows = 0 if name == "values" and meta.get("values") == "absent" else count
                if len(shape) != 3 or shape[1] != rows:
                    raise CacheIntegrityError(f"{name} has shape {shape}; the header says {count} triples",
                                              path=path, field=name)
            return meta, read(f, meta)
    except KBLaMError:
        raise
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types
        raise KBFormatError(f"not a readable safetensors file: {exc}", path=path) from exc


def _read_checked(path: Path, encoder: KBEncoder) -> tuple[dict, dict[str, torch.Tensor]]:
    """Header checks for this encoder (fingerprint, shapes, dtypes) before any tensor is read."""
    adapters = encoder.adapters

    def read(f, meta):
        if meta.get("fingerprint") != encoder.fingerprint:
            raise CacheMismatchError(
                f"{path} was encoded by different adapters or a different sentence encoder "
                f"(cache fingerprint {meta.get('fingerprint')!r} from encoder {meta.get('encoder')!r}, "
                f"current {encoder.fingerprint!r} from {encoder.encoder_name!r}); re-encode it")
        want = [adapters.num_kb_layers, _meta_int(meta, "count", path), adapters.kb_dim]
        for name in ("keys", "values"):
            sl = f.get_slice(name)
            shape, dt = list(sl.get_shape()), sl.get_dtype()
            if name == "values" and meta.get("values") == "absent":
                want = [want[0], 0, want[2]]
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
        return {name: f.get_tensor(name) for name in f.keys()}

    return _open_cache(path, read)


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
                samples: int, path: Path, key_embeddings: torch.Tensor | None = None) -> None:
    """Re-encode a few triples (spread over the KB, first and last included) and compare:
    catches permuted or edited records and tokens made by another encoder that the
    fingerprint cannot see. Costs ``samples`` triples of encoding."""
    n = len(triples)
    k = min(samples, n)
    rows = sorted({round(i * (n - 1) / max(1, k - 1)) for i in range(k)})
    counted = encoder.triples_encoded  # a check, not an encode of the KB: leave the counter alone
    try:
        fresh_k, fresh_v, fresh_e = encoder.encode_with_key_embeddings([triples[i] for i in rows],
                                                                       dtype=torch.float32, show_progress=False)
    finally:
        encoder.triples_encoded = counted
    checks = [("keys", keys, fresh_k)] + ([("values", values, fresh_v)] if has_values(values) else [])
    if key_embeddings is not None:
        checks.append(("key_embeddings", key_embeddings.unsqueeze(1), fresh_e.unsqueeze(1)))
    for name, stored, fresh in checks:
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


