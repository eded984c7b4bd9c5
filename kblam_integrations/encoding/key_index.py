"""A maximum-inner-product index over the KB's key embeddings, so KB attention need not scan every triple.

Why the sentence-encoder space: a knowledge token's key in KB layer ``j`` is
``LayerNorm(W_j e)`` (no affine), i.e. ``sqrt(d) * C W_j e / |C W_j e|`` with ``C`` the
centring matrix. The score of a KB query ``q`` against it is therefore
``(W_j^T C q) . e / sigma_j(e)``: an inner product in the encoder's space up to the
per-triple norm ``sigma_j(e)``. One index over the ``[N, encoder_dim]`` key embeddings
(384 floats per triple, not ``layers x kb_dim``) thus serves every KB layer: layer
``j``'s query is mapped by ``P_j = C W_j`` and searched. The index stores ``e / rho(e)``,
with ``rho(e)^2 = mean_j sigma_j(e)^2 = e^T M e`` (``M``: :func:`key_norm_metric`, one
``E x E`` matrix, so a triple's norm costs ``E^2`` and not ``layers x kb_dim x E``): the
LayerNorm's division is thus folded in up to the ratio ``sigma_j(e) / rho(e)``, which
varies far less across triples than ``sigma_j`` itself (a triple with small key norms
draws attention from many questions and would be missed by a search over raw ``e``).
The search still only returns *candidates* (a few dozen); the attention side then scores
those exactly against their stored keys
(:mod:`kblam_integrations.attention.indexed_scoring`).

Kinds: ``"flat"`` (exact inner-product search, for checks and small KBs) and ``"ivf"``
(inverted lists: approximate, sublinear, supports removal). Ids are stable int64 per
triple, so adding or removing triples updates the index without touching the rest.
"""

from __future__ import annotations

import math
import threading
from typing import Sequence

import numpy as np
import torch

from ..errors import CacheIntegrityError, ConfigError

INDEX_KINDS = ("flat", "ivf")
#: Training points faiss wants per inverted list (it warns below 39); more buy little for coarse lists.
_POINTS_PER_LIST = 39
_TRAIN_POINTS_PER_LIST = 64
#: Inverted lists at most: k-means cost grows with lists x training points.
_MAX_LISTS = 4096
#: Embeddings mapped at a time (bounds the memory of building a 1M-triple index).
_CHUNK = 65536


def _faiss():
    import faiss  # imported on first use: ~0.3 s

    return faiss


def default_nlist(n: int) -> int:
    """Inverted lists for ``n`` vectors: about ``4 sqrt(n)`` (at most 4096), with at least 39 training
    points per list."""
    return max(1, min(int(4 * math.sqrt(max(n, 1))), _MAX_LISTS, n // _POINTS_PER_LIST))


class KeyIndex:
    """A faiss inner-product index over key embeddings, addressed by stable int64 ids.

    ``metric``: the ``[E, E]`` :func:`key_norm_metric` of the key adapter; the index then
    holds each embedding divided by its key norm ``rho(e)`` (see the module docstring).
    Without it the embeddings are stored as they are.
    """

    def __init__(self, index, kind: str, dim: int, nprobe: int = 16, *, metric: torch.Tensor | None = None):
        if kind not in INDEX_KINDS:
            raise ConfigError(f"kb_index must be one of {INDEX_KINDS}, got {kind!r}")
        if metric is not None and tuple(metric.shape) != (dim, dim):
            raise ConfigError(f"the key norm metric must be [{dim}, {dim}], got {list(metric.shape)}")
        self.index, self.kind, self.dim = index, kind, dim
        self.nprobe = nprobe
        self.metric = None if metric is None else metric.detach().float().cpu()
        self._lock = threading.Lock()  # faiss indexes are not safe to search while being changed

    def row_norms(self, embeddings: torch.Tensor) -> torch.Tensor:
        """``[N]`` each embedding's key norm ``rho(e)`` (ones without a metric)."""
        if self.metric is None:
            return torch.ones(len(embeddings))
        return torch.cat([self._norms(e) for e in _f32_chunks(embeddings)]) if len(embeddings) else torch.empty(0)

    def stored_vectors(self, embeddings: torch.Tensor) -> np.ndarray:
        """What the index holds for ``embeddings``: each divided by its key norm (one fp32 copy,
        filled chunk by chunk, so a 1M-triple build holds no second full-size array)."""
        if self.metric is None:
            return _as_f32(embeddings)
        out = np.empty(tuple(embeddings.shape), dtype=np.float32)
        lo = 0
        for e in _f32_chunks(embeddings):
            out[lo:lo + len(e)] = (e / self._norms(e)[:, None]).numpy()
            lo += len(e)
        return out

    def _norms(self, e: torch.Tensor) -> torch.Tensor:
        return ((e @ self.metric) * e).sum(-1).clamp_min(1e-12).sqrt()

    # ------------------------------------------------------------ construction
    @classmethod
    def build(cls, embeddings: torch.Tensor, ids: torch.Tensor, kind: str = "ivf", *, nlist: int | None = None,
              nprobe: int = 16, seed: int = 0, metric: torch.Tensor | None = None) -> "KeyIndex":
        """An index of ``embeddings`` ``[N, E]`` under ``ids`` ``[N]`` (IVF lists trained on a sample)."""
        faiss = _faiss()
        n, dim = embeddings.shape
        out = cls(None, kind, dim, nprobe, metric=metric)
        x = out.stored_vectors(embeddings)
        if kind == "flat":
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        elif kind == "ivf":
            lists = nlist or default_nlist(n)
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
            sample = x
            if n > lists * _TRAIN_POINTS_PER_LIST:  # k-means needs far fewer points than a large KB has
                rows = np.random.default_rng(seed).choice(n, lists * _TRAIN_POINTS_PER_LIST, replace=False)
                sample = x[np.sort(rows)]
            index.cp.seed = seed
            index.cp.niter = 10
            index.train(sample if len(sample) else np.zeros((1, dim), dtype=np.float32))
            index.set_direct_map_type(faiss.DirectMap.Hashtable)  # removal and lookup by id
        else:
            raise ConfigError(f"kb_index must be one of {INDEX_KINDS}, got {kind!r}")
        out.index = index
        if len(ids):
            index.add_with_ids(x, _as_ids(ids))
        return out

    def add(self, embeddings: torch.Tensor, ids: torch.Tensor) -> None:
        """Add triples (their ids must not be in the index yet)."""
        if len(ids):
            with self._lock:
                self.index.add_with_ids(self.stored_vectors(embeddings), _as_ids(ids))

    def remove(self, ids: torch.Tensor | Sequence[int]) -> None:
        """Remove triples by id (unknown ids are ignored)."""
        if len(ids):
            with self._lock:
                self.index.remove_ids(_as_ids(torch.as_tensor(ids)))

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def nbytes(self) -> int:
        """Memory the index holds: the vectors and their ids (plus the IVF centroids)."""
        lists = int(getattr(self.index, "nlist", 0))
        return self.ntotal * (self.dim * 4 + 8) + lists * self.dim * 4

    # ------------------------------------------------------------------ search
    def search(self, vectors: torch.Tensor, k: int) -> torch.Tensor:
        """Ids ``[Q, k]`` of the largest inner products with ``vectors`` ``[Q, E]`` (-1 where fewer exist)."""
        with self._lock:
            if self.kind == "ivf":
                self.index.nprobe = min(self.nprobe, self.index.nlist)
            _, found = self.index.search(_as_f32(vectors), max(1, min(k, max(self.ntotal, 1))))
        return torch.from_numpy(found)

    # ------------------------------------------------------------- persistence
    def to_tensor(self) -> torch.Tensor:
        """The serialised index as a uint8 tensor (stored in the encoded-KB file, checksummed there)."""
        with self._lock:
            return torch.from_numpy(_faiss().serialize_index(self.index).copy())

    @classmethod
    def from_tensor(cls, blob: torch.Tensor, kind: str, dim: int, *, nprobe: int = 16,
                    metric: torch.Tensor | None = None) -> "KeyIndex":
        index = _faiss().deserialize_index(np.ascontiguousarray(blob.numpy()))
        if int(index.d) != dim:
            raise CacheIntegrityError(f"the key index has dimension {index.d}, the key embeddings {dim}",
                                      field="key_index")
        if kind not in INDEX_KINDS or (kind == "ivf") != hasattr(index, "nprobe"):
            raise CacheIntegrityError(f"the key index is not of the stored kind {kind!r}", field="key_index")
        return cls(index, kind, dim, nprobe, metric=metric)

    def verify(self, embeddings: torch.Tensor, ids: torch.Tensor, samples: int = 8) -> None:
        """Raise :class:`CacheIntegrityError` unless the index holds exactly ``ids``, each with its embedding
        (checked on a sample spread over the KB): an index that drifted from its KB would hide triples."""
        n = len(ids)
        if self.ntotal != n:
            raise CacheIntegrityError(f"the key index holds {self.ntotal} vectors for {n} triples", field="key_index")
        rows = sorted({round(i * (n - 1) / max(1, samples - 1)) for i in range(min(samples, n))})
        for r in rows:
            try:
                stored = self.index.reconstruct(int(ids[r]))
            except RuntimeError:
                raise CacheIntegrityError(f"the key index has no vector for triple #{r}", field="key_index",
                                          record=f"#{r}") from None
            want = self.stored_vectors(embeddings[r:r + 1])[0]
            if not np.allclose(stored, want, atol=1e-3):
                raise CacheIntegrityError(f"the key index's vector for triple #{r} is not its key embedding",
                                          field="key_index", record=f"#{r}")


def _f32_chunks(x: torch.Tensor):
    """``x`` as fp32 CPU tensors of at most ``_CHUNK`` rows (bounds the working memory)."""
    for lo in range(0, len(x), _CHUNK):
        yield x[lo:lo + _CHUNK].detach().float().cpu()


def _as_f32(x: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(x.detach().float().cpu().numpy(), dtype=np.float32)


def _as_ids(ids: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(ids.detach().cpu().numpy(), dtype=np.int64)


class KeySearch:
    """What KB attention needs from an index, for one snapshot: candidate *rows* for a question.

    Args:
        index: the :class:`KeyIndex` (ids, not rows).
        ids: ``[N]`` id of each row of the snapshot (ids the index returns for triples not
            in this snapshot, e.g. added since, are dropped).
        embeddings: ``[N, E]`` the snapshot's key embeddings (a sample sets each layer's
            typical key norm relative to the index's ``rho``, which puts the layers' queries
            on the scale of their true scores).
        projections: ``[layers, kb_dim, E]`` the per-layer ``C W_j`` (see the module docstring).
        candidates: rows searched for each KB layer's query (when ``layer_queries``) and, 4x as
            many, for their sum.
        tail_sample: rows sampled at random to estimate the softmax mass of the rows not
            proposed (see :mod:`kblam_integrations.attention.indexed_scoring`).
    """

    def __init__(self, index: KeyIndex, ids: torch.Tensor, embeddings: torch.Tensor, projections: torch.Tensor, *,
                 candidates: int = 32, tail_sample: int = 1024, layer_queries: bool = True, seed: int = 0):
        self.index, self.projections, self.k = index, projections, candidates
        self.layer_queries = layer_queries
        order = torch.argsort(ids)
        self._sorted_ids, self._rows = ids[order], order
        n = len(ids)
        g = torch.Generator().manual_seed(seed)
        self.tail_rows = torch.randperm(n, generator=g)[: min(tail_sample, n)].sort().values
        sample = embeddings[self.tail_rows].float()  # [m, E]
        kb_dim = projections.shape[1]
        # sigma_j(e) = |C W_j e| / sqrt(kb_dim): LayerNorm divides the key by it, the index by rho(e)
        sigma = torch.einsum("lde,me->lmd", projections, sample).norm(dim=-1) / math.sqrt(kb_dim)  # [L, m]
        self.key_norm = (sigma / index.row_norms(sample)).mean(1)
        self._tail_keys: torch.Tensor | None = None

    def candidates(self, queries: torch.Tensor, scaling: float) -> torch.Tensor:
        """Rows ``[B, c]`` (-1 padded) for the KB layers' queries ``[layers, B, kb_dim]``: the best
        ``candidates`` of each layer's query and ``4 x candidates`` of their sum, merged."""
        u = torch.einsum("sbd,sde->sbe", queries.float(), self.projections) * scaling
        u = u / self.key_norm[:, None, None]
        s, b, e = u.shape
        found = self.index.search(u.sum(0), 4 * self.k)  # [B, 4k] ids
        if self.layer_queries:
            per_layer = self.index.search(u.reshape(s * b, e), self.k)
            k = per_layer.shape[1]
            found = torch.cat([found, per_layer.reshape(s, b, k).transpose(0, 1).reshape(b, s * k)], dim=1)
        pos = torch.searchsorted(self._sorted_ids, found.clamp_min(0)).clamp_max(len(self._sorted_ids) - 1)
        hit = (found >= 0) & (self._sorted_ids[pos] == found)
        rows = torch.where(hit, self._rows[pos], torch.full_like(found, -1))
        out = torch.full_like(rows, -1)
        for i in range(b):
            unique = rows[i][rows[i] >= 0].unique()
            out[i, : len(unique)] = unique
        return out

    def tail_keys(self, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(rows [m], keys [layers, kb_dim, m] fp32)`` of the fixed sample, every KB layer (gathered once)."""
        if self._tail_keys is None:
            self._tail_keys = keys[self.tail_rows.to(keys.device)].float().permute(1, 2, 0).contiguous()
        return self.tail_rows.to(keys.device), self._tail_keys


def key_norm_metric(projections: torch.Tensor) -> torch.Tensor:
    """``M = sum_j P_j^T P_j / (layers x kb_dim)`` ``[E, E]`` from :func:`key_projections`: ``e^T M e``
    is the mean over KB layers of ``sigma_j(e)^2`` (see the module docstring)."""
    layers, kb_dim, _ = projections.shape
    p = projections.detach().float()
    return torch.einsum("lde,ldf->ef", p, p) / (layers * kb_dim)


def key_projections(key_weight: torch.Tensor, num_layers: int, kb_dim: int) -> torch.Tensor:
    """``[layers, kb_dim, E]``: each KB layer's key map ``W_j`` centred over its output (``C W_j``),
    the map that takes a KB query into the sentence-encoder space (see the module docstring)."""
    w = key_weight.detach().float().view(num_layers, kb_dim, -1)
    return w - w.mean(dim=1, keepdim=True)
