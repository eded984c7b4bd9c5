"""KB attention with the knowledge tokens split across processes (``torch.distributed``).

Each rank holds a contiguous shard of the knowledge tokens and the whole backbone. A KB
layer's softmax runs over ``[knowledge tokens ; null token ; causal text prefix]``; the
KB part is a sum over triples, so it splits exactly: every rank folds its own shard into
an online-softmax state per query row, row max ``m``, sum ``l = sum exp(s - m)`` and
weighted values ``acc = sum exp(s - m) v``, and the states are combined with one MAX and
one SUM all-reduce (rescaling each rank's ``l`` and ``acc`` to the global max first).
The text part and the null token are the same on every rank (replicated backbone states,
replicated null token), so each rank adds them locally *after* the reduction: summing
them across ranks would count them N times.

Only the result is communicated, ``B x H x q x (D + 2)`` floats per KB layer and
forward, never knowledge tokens. Inference only: the all-reduce keeps no autograd graph.

Usage (one process per GPU, e.g. under ``torchrun``)::

    shard = KBShard.even(len(triples))              # this rank's part of the KB
    ctx = model.kb_context(model.encode_kb(triples[shard.slice]))
    ctx.shard = shard
    with torch.no_grad():
        logits = model(input_ids, context=ctx).logits  # the same on every rank
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from .context import KBAttentionRecord
from .rectangular import _CACHE_CHUNK, _MAX_SCORE_ELEMENTS, _MIN_LOG_P, _accumulate, _finite_max

# ``all_reduce(tensor, op)`` with ``op`` in {"max", "sum"}: returns the reduced tensor
# (it may reduce in place). torch.distributed in production; tests pass a stand-in.
AllReduce = Callable[[torch.Tensor, str], torch.Tensor]

_FLOAT_MIN = torch.finfo(torch.float32).min


@dataclass(frozen=True)
class KBShard:
    """This rank's part of a KB split across the ranks of ``group``.

    Args:
        offset: global index of this rank's first triple.
        size: number of triples this rank holds (its ``KBContext.keys.shape[0]``).
        kb_len: triples in the whole KB: the ``log(scale) - log(kb_len)`` score shift and
            the record's global columns depend on it, not on the shard's size.
        group: the ``torch.distributed`` process group (None: the default group).
    """

    offset: int
    size: int
    kb_len: int
    group: Any = None

    @classmethod
    def even(cls, kb_len: int, group: Any = None) -> "KBShard":
        """This rank's contiguous part of an even split (the first ``kb_len % world`` ranks get one more)."""
        import torch.distributed as dist

        rank, world = dist.get_rank(group), dist.get_world_size(group)
        lo, hi = shard_bounds(kb_len, rank, world)
        return cls(offset=lo, size=hi - lo, kb_len=kb_len, group=group)

    @property
    def slice(self) -> slice:
        """The triples of this shard, as a slice of the global KB."""
        return slice(self.offset, self.offset + self.size)

    def all_reduce(self, tensor: torch.Tensor, op: str) -> torch.Tensor:
        """All-reduce ``tensor`` in place over the group (``op``: "max" or "sum")."""
        import torch.distributed as dist

        dist.all_reduce(tensor, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM, group=self.group)
        return tensor

    def retrieval_probs(self, kb_query: torch.Tensor, kb_keys: torch.Tensor, scaling: float, **kwargs: Any):
        """:func:`~kblam_integrations.attention.scoring.kb_retrieval_probs` for this shard."""
        return sharded_retrieval_probs(kb_query, kb_keys, scaling, self, **kwargs)

    def kb_attention(self, t_scores, v_text, kb_query, kb_keys, kb_values, null_key, null_value, scaling,
                     score_shift, chunk_size, record, *, top_k=None, keep_logits=False, grad_inputs=()):
        """:func:`sharded_kb_attention` after :func:`check_supported` (called by ``rectangular_attention``,
        which reaches this module through the shard object, not an import: no import cycle)."""
        check_supported(self, top_k, keep_logits, null_key is not None, *grad_inputs)
        return sharded_kb_attention(t_scores, v_text, kb_query, kb_keys, kb_values, null_key, null_value, scaling,
                                    score_shift, chunk_size, record, self)


def shard_bounds(kb_len: int, rank: int, world: int) -> tuple[int, int]:
    """``[lo, hi)`` of ``rank``'s triples when ``kb_len`` triples are split as evenly as possible."""
    base, extra = divmod(kb_len, world)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (rank < extra)


# ------------------------------------------------------------------ the exact combine
def kb_shard_state(kb_query: torch.Tensor, kb_keys: torch.Tensor, kb_values: torch.Tensor, scaling: float,
                   chunk_size: int = 4096, last_scores: torch.Tensor | None = None):
    """Online-softmax state ``(m, l, acc)`` of one shard's knowledge tokens, per query row.

    Scores are the unshifted ``q_kb . k / sqrt(d)`` (the KB-size shift moves the text's frame
    instead, as in :mod:`.rectangular`). Every chunk rescales to its own max, so no score
    can overflow whatever the text scores are. An empty shard gives ``m = float32 min``,
    ``l = acc = 0``: it drops out of the combine. ``last_scores`` (``[B, H, n]``), if
    given, receives the last query row's scores, for the attention record.
    """
    b, h, q, _ = kb_query.shape
    n, dv = kb_keys.shape[0], kb_values.shape[-1]
    qs = kb_query.float() * scaling
    m = torch.full((b, h, q, 1), _FLOAT_MIN, device=qs.device)
    l = torch.zeros(b, h, q, 1, device=qs.device)
    acc = torch.zeros(b, h, q, dv, device=qs.device)
    chunk = max(1, min(chunk_size, _CACHE_CHUNK, max(n, 1), _MAX_SCORE_ELEMENTS // max(1, b * h * q)))
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        s = torch.matmul(qs, kb_keys[lo:hi].float().permute(1, 2, 0))  # [B,H,q,D] x [H,D,c]
        if last_scores is not None:
            last_scores[..., lo:hi] = s[:, :, -1]
        m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
        alpha = torch.exp(m - m_new)
        p = s.sub_(m_new).clamp_min_(_MIN_LOG_P).exp_()
        l = l * alpha + p.sum(dim=-1, keepdim=True)
        acc = acc * alpha + torch.matmul(p, kb_values[lo:hi].float().transpose(0, 1))
        m = m_new
    return m, l, acc


def combine_kb_states(m: torch.Tensor, l: torch.Tensor, acc: torch.Tensor, all_reduce: AllReduce):
    """The whole KB's ``(M, L, A)`` from every rank's shard state: one MAX, then one SUM all-reduce.

    ``L = sum_r l_r exp(m_r - M)`` and ``A = sum_r acc_r exp(m_r - M)`` with ``M = max_r m_r``:
    each rank rescales to the global max before summing, so no term overflows and the
    result equals the softmax state of the concatenated shards. ``l`` and ``acc`` travel
    in one tensor (one SUM call).
    """
    big_m = all_reduce(m.clone(), "max")
    w = torch.exp(m - big_m)
    la = all_reduce(torch.cat([l * w, acc * w], dim=-1), "sum")
    return big_m, la[..., :1], la[..., 1:]


def local_state(t_scores: torch.Tensor, v_text: torch.Tensor, score_shift: float, null_score: torch.Tensor | None,
                null_value: torch.Tensor | None):
    """``(m, l, acc)`` of the replicated columns, text prefix and null token, in the KB's score frame.

    Every rank computes it from identical data and adds it once, after the reduction.
    """
    t = t_scores - score_shift  # KB scores are kept unshifted: shift the text the other way
    m = _finite_max(t)
    if null_score is not None:
        m = torch.maximum(m, null_score)
    p = torch.exp(t - m)
    l = p.sum(dim=-1, keepdim=True)
    acc = torch.matmul(p, v_text.float())
    if null_score is not None:
        p_null = torch.exp(null_score - m)  # [B,H,q,1]
        l = l + p_null
        acc = acc + p_null * null_value.float().unsqueeze(1)  # [H,1,D]
    return m, l, acc


def merge_states(a, b):
    """Two disjoint column sets' ``(m, l, acc)`` as one (the flash-attention rescaling)."""
    m = torch.maximum(a[0], b[0])
    wa, wb = torch.exp(a[0] - m), torch.exp(b[0] - m)
    return m, a[1] * wa + b[1] * wb, a[2] * wa + b[2] * wb


def sharded_kb_attention(t_scores, v_text, kb_query, kb_keys, kb_values, null_key, null_value, scaling, score_shift,
                         chunk_size, record: KBAttentionRecord | None, shard: KBShard, *,
                         all_reduce: AllReduce | None = None) -> torch.Tensor:
    """Attention output ``[B, H, q, D]`` (fp32) of one KB layer whose knowledge tokens are sharded.

    Called by :func:`~kblam_integrations.attention.rectangular.rectangular_attention` when
    the context carries a :class:`KBShard`. ``record`` gets this shard's columns followed
    by the null token, with probabilities normalised over the whole KB (gather the ranks'
    records with :func:`gather_kb_columns`). ``all_reduce`` defaults to ``shard.all_reduce``.
    """
    if kb_keys.shape[0] != shard.size:
        raise ValueError(f"this rank holds {kb_keys.shape[0]} knowledge tokens but its KBShard says {shard.size}")
    reduce = all_reduce or shard.all_reduce
    qs = kb_query.float() * scaling
    null_score = torch.matmul(qs, null_key.float().unsqueeze(-1)) if null_key is not None else None  # [B,H,q,1]
    last = torch.empty(*kb_query.shape[:2], shard.size, device=qs.device) if record is not None else None
    kb = combine_kb_states(*kb_shard_state(kb_query, kb_keys, kb_values, scaling, chunk_size, last), reduce)
    m, l, acc = merge_states(kb, local_state(t_scores, v_text, score_shift, null_score, null_value))
    if record is not None:
        if null_score is not None:
            last = torch.cat([last, null_score[:, :, -1]], dim=-1)
        lse_last = (m + torch.log(l))[:, :, -1]  # [B,H,1], the KB's unshifted frame
        _accumulate(record, torch.exp(last - lse_last).mean(dim=1).unsqueeze(1))
    return acc / l


def check_supported(shard: KBShard, top_k: int | None, keep_logits: bool, has_null: bool, *tensors) -> None:
    """Refuse what the sharded path cannot do exactly: top-k pruning, training logits, autograd."""
    if top_k is not None and top_k < shard.kb_len + has_null:
        raise ValueError("top_k pruning is not supported with a sharded KB")
    if keep_logits or (torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)):
        raise ValueError("a sharded KB is inference-only: run under torch.no_grad() (training is not sharded)")


# ------------------------------------------------------------------ retrieval scores
def sharded_retrieval_probs(kb_query: torch.Tensor, kb_keys: torch.Tensor, scaling: float, shard: KBShard, *,
                            null_key: torch.Tensor | None = None, row_mask: torch.Tensor | None = None,
                            chunk_size: int = 4096, gather: bool = False,
                            all_reduce: AllReduce | None = None) -> torch.Tensor:
    """Retrieval probabilities of this shard's triples ``[B, size (+1 null)]``, normalised over the whole KB.

    The sharded form of :func:`~kblam_integrations.attention.scoring.kb_retrieval_probs`:
    per-rank logits, a global per-head logsumexp from one MAX and one SUM all-reduce
    (the null token, replicated, joins after the reduction), then the mean over heads.
    ``gather``: return the whole KB's ``[B, kb_len (+1)]`` on every rank instead.
    """
    if kb_keys.shape[0] != shard.size:
        raise ValueError(f"this rank holds {kb_keys.shape[0]} knowledge tokens but its KBShard says {shard.size}")
    reduce = all_reduce or shard.all_reduce
    if row_mask is None:
        q = kb_query.float().mean(dim=2)  # [B,H,D]: mean logit = logit of the mean query
    else:
        w = row_mask.to(torch.float32)[:, None, :, None]
        q = (kb_query.float() * w).sum(2) / w.sum(2).clamp_min(1)
    q = q * scaling
    n = kb_keys.shape[0]
    logits = torch.empty(*q.shape[:2], n, dtype=torch.float32, device=q.device)
    for lo in range(0, n, chunk_size):
        hi = min(n, lo + chunk_size)
        logits[..., lo:hi] = torch.einsum("bhd,nhd->bhn", q, kb_keys[lo:hi].float())
    m = logits.amax(dim=-1, keepdim=True).clamp_min(_FLOAT_MIN) if n else torch.full_like(q[..., :1], _FLOAT_MIN)
    big_m = reduce(m.clone(), "max")
    total = reduce(torch.exp(logits - big_m).sum(dim=-1, keepdim=True), "sum")
    lse = big_m + torch.log(total)
    if null_key is not None:
        null = torch.einsum("bhd,hd->bh", q, null_key.float()).unsqueeze(-1)
        logits = torch.cat([logits, null], dim=-1)
        lse = torch.logaddexp(lse, null)
    probs = torch.exp(logits - lse).mean(dim=1)
    return gather_kb_columns(probs, shard, null_last=null_key is not None) if gather else probs


def gather_kb_columns(local: torch.Tensor, shard: KBShard, *, null_last: bool = True) -> torch.Tensor:
    """Every rank's ``[..., size (+1 null)]`` columns placed at their global offsets: ``[..., kb_len (+1)]``.

    Shards may differ in size (all_gather needs equal shapes, so each is padded to the
    largest); the null column is replicated and taken from this rank.
    """
    import torch.distributed as dist

    world = dist.get_world_size(shard.group)
    meta = torch.tensor([shard.offset, shard.size], device=local.device)
    metas = [torch.empty_like(meta) for _ in range(world)]
    dist.all_gather(metas, meta, group=shard.group)
    width = max(int(x[1]) for x in metas)
    cols = local[..., :shard.size]
    padded = torch.zeros(*cols.shape[:-1], width, dtype=cols.dtype, device=cols.device)
    padded[..., :shard.size] = cols
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded.contiguous(), group=shard.group)
    out = torch.empty(*cols.shape[:-1], shard.kb_len + null_last, dtype=cols.dtype, device=cols.device)
    for (offset, size), part in zip((x.tolist() for x in metas), parts):
        out[..., offset:offset + size] = part[..., :size]
    if null_last:
        out[..., -1] = local[..., -1]
    return out
