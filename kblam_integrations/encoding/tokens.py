"""Knowledge tokens in memory: the immutable :class:`KBTokens` snapshot and its layer-major layout."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ..kb.triple import Triple

if TYPE_CHECKING:
    from .key_index import KeyIndex


def empty_tokens(n: int, layers: int, dim: int, *, dtype: torch.dtype = torch.float16,
                 device: torch.device | str | None = None) -> torch.Tensor:
    """Uninitialised knowledge tokens ``[n, layers, dim]`` stored **layer-major**.

    The tensor is a transposed view of ``[layers, n, dim]`` storage, so indexing by
    triple (``t[i]``) works as for any ``[n, layers, dim]`` tensor while each KB layer's
    slice ``t[:, j]`` is one contiguous block: attention streams it sequentially and
    never needs a per-layer copy.
    """
    return torch.empty(layers, n, dim, dtype=dtype, device=device).transpose(0, 1)


def absent_values(n: int, layers: int, dim: int, *, dtype: torch.dtype = torch.float16,
                  device: torch.device | str | None = None) -> torch.Tensor:
    """Value tokens of a KB stored keys-only: a zero-stride ``[n, layers, dim]`` view of one zero
    row (no memory). For models that never read value tokens: the retrieval pass reads keys only,
    grounded mode reads the facts' text and pure mode the backbone's own states."""
    # stride 0 along the triples at every size (``expand`` keeps a real stride for n <= 1)
    return torch.zeros(layers * dim, dtype=dtype, device=device).as_strided((n, layers, dim), (0, dim, 1))


def has_values(t: torch.Tensor) -> bool:
    """Whether value tokens are stored (not :func:`absent_values`, whose triples all share one zero row)."""
    return not (t.dim() == 3 and t.stride(0) == 0)


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
    layer-major (:func:`empty_tokens`), but any layout works. ``key_embeddings``
    ``[N, encoder_dim]`` are the sentence embeddings the keys were made from, ``ids`` ``[N]``
    each triple's stable int64 id in ``index`` (a :class:`~.key_index.KeyIndex` over the
    key embeddings, shared with later snapshots of the same manager; None: no index).
    """

    version: int
    triples: tuple[Triple, ...]
    keys: torch.Tensor
    values: torch.Tensor
    key_embeddings: torch.Tensor | None = None
    ids: torch.Tensor | None = None
    index: "KeyIndex | None" = None

    def __len__(self) -> int:
        return len(self.triples)


def gather_and_append(old: torch.Tensor, index: torch.Tensor, new: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Layer-major ``cat([old[index], new])`` in ``dtype``, written straight into the result
    (absent values stay absent)."""
    k = index.numel()
    if not has_values(old) and not has_values(new):
        return absent_values(k + new.shape[0], old.shape[1], old.shape[2], dtype=dtype, device=old.device)
    out = empty_tokens(k + new.shape[0], old.shape[1], old.shape[2], dtype=dtype, device=old.device)
    for j in range(old.shape[1]):  # one layer at a time: temporaries are one layer's slice at most
        if k and old.dtype == dtype:
            torch.index_select(old[:, j], 0, index, out=out[:k, j])
        elif k:
            out[:k, j] = old[:, j].index_select(0, index)
        if new.shape[0]:
            out[k:, j] = new[:, j]
    return out
