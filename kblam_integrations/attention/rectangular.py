"""The math of KBLaM's rectangular attention, one KB layer.

One softmax runs over [knowledge tokens ; null token ; causal text prefix]. Text scores
are the backbone's own (RoPE, causal/padding mask, GQA); KB scores are
``q_kb . k_kb / sqrt(d)`` (+ the KB-size shift). Knowledge tokens are never queries, so
cost is O(q_len x kb_len).

Memory: the knowledge tokens are read where they are stored (a strided per-layer view
of the ``[N, n_kb_layers, H * D]`` KB, usually fp16), never copied as a whole. The KB
is streamed in chunks through one **online softmax** (running max / sum / output, as in
flash attention): every chunk is upcast into the same small fp32 work buffers, scored
once and accumulated once, so peak memory holds ``heads x q_len x chunk`` scores, not
``heads x q_len x kb_len``, and no score is computed twice. The learned null token is
passed separately (``null_key`` / ``null_value``) instead of being concatenated onto
the KB, which would copy every knowledge token on every call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from .context import KBAttentionRecord

if TYPE_CHECKING:
    from .sharded import KBShard

# Bigger fp32 work buffers than this (elements) would show up in peak memory; chunks are
# shrunk so that the score chunk ``B x H x q x chunk`` stays below it (long prompts).
_MAX_SCORE_ELEMENTS = 4 * 2**20
# KB tokens per chunk at most, whatever ``chunk_size`` allows: small enough that the fp32
# work buffers (keys, values, scores) stay in the CPU's L2 cache between the upcast and
# the matmuls that read them.
_CACHE_CHUNK = 512
# Log-probabilities (relative to the running reference, whose own term is exp(0) = 1) are
# clamped here before ``exp``: exp(-60) = 9e-27 is still a normal float, and so are its
# products with fp16-range values, while exp of anything below about -87 is a subnormal
# float, which makes ``exp`` and the value matmul 10-40x slower on x86 CPUs (measured:
# 0.33 s -> 0.19 s time to first token at 10k triples). The clamp adds at most
# kb_len * 9e-27 to a softmax sum that is >= 1: far below fp32 precision.
_MIN_LOG_P = -60.0


def _repeat_kv(x: torch.Tensor, groups: int) -> torch.Tensor:
    if groups == 1:
        return x
    b, h, s, d = x.shape
    return x[:, :, None].expand(b, h, groups, s, d).reshape(b, h * groups, s, d)


def text_scores(query: torch.Tensor, key: torch.Tensor, mask: torch.Tensor | None, scaling: float) -> torch.Tensor:
    """Backbone attention logits [B, H, q, kv] in fp32 with the mask applied as -inf."""
    groups = query.shape[1] // key.shape[1]
    k = _repeat_kv(key, groups).float()
    scores = torch.matmul(query.float(), k.transpose(-1, -2)) * scaling
    q_len, kv_len = scores.shape[-2:]
    if mask is None:
        if q_len > 1:
            # Causal: query i sits at absolute position kv_len - q_len + i.
            qi = torch.arange(q_len, device=scores.device).unsqueeze(-1) + (kv_len - q_len)
            ki = torch.arange(kv_len, device=scores.device).unsqueeze(0)
            scores = scores.masked_fill(ki > qi, float("-inf"))
    elif mask.dtype == torch.bool:
        scores = scores.masked_fill(~mask[..., :kv_len], float("-inf"))
    else:
        scores = scores + mask[..., :kv_len].float()
    return scores


def kb_logits(kb_query: torch.Tensor, kb_keys: torch.Tensor, scaling: float, score_shift: float = 0.0,
              null_key: torch.Tensor | None = None) -> torch.Tensor:
    """All KB scores ``[B, H, q, N (+1)]`` in fp32 (null token last), autograd-friendly.

    Materialises the full matrix: for training (small KBs) and reference checks only.
    """
    qk = kb_query.float()
    s = torch.einsum("bhqd,nhd->bhqn", qk, kb_keys.float())
    if null_key is not None:
        s = torch.cat([s, torch.einsum("bhqd,hd->bhq", qk, null_key.float()).unsqueeze(-1)], dim=-1)
    return s * scaling + score_shift


def _finite_max(x: torch.Tensor) -> torch.Tensor:
    """Row max that is finite even for fully masked rows (so that ``exp(x - max)`` is 0, not NaN)."""
    return x.amax(dim=-1, keepdim=True).clamp_min(torch.finfo(torch.float32).min)


def rectangular_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None,
    scaling: float,
    kb_query: torch.Tensor,
    kb_keys: torch.Tensor,
    kb_values: torch.Tensor,
    *,
    null_key: torch.Tensor | None = None,
    null_value: torch.Tensor | None = None,
    score_shift: float = 0.0,
    chunk_size: int = 4096,
    top_k: int | None = None,
    record: KBAttentionRecord | None = None,
    keep_logits: bool = False,
    shard: KBShard | None = None,
) -> torch.Tensor:
    """Attention output ``[B, q, H, D]`` for one KB layer.

    Args:
        query, key, value: the backbone's states (``[B, H, q, D]``, ``[B, KVH, kv, D]``).
        mask: the backbone's mask (bool, additive float, or None = causal).
        kb_query: ``[B, H, q, D]`` KB query states (no rotary embedding).
        kb_keys, kb_values: ``[N, H, D]`` knowledge tokens of this layer (any float dtype,
            any strides with a contiguous last dim: they are read in place).
        null_key, null_value: ``[H, D]`` the learned null token of this layer (optional);
            it takes part in the softmax as the last KB column.
        top_k: keep only the k best-scoring KB columns (null included) per query row.
        record: accumulate per-token attention mass into this record (null token last).
        keep_logits: store the raw KB scores ``[B, H, q, N (+1)]`` in ``record.logits``
            (graph attached; materialises the full score matrix: for training).
        shard: the knowledge tokens are this rank's part of a KB split across processes
            (:mod:`.sharded`): the softmax is combined over all ranks by all-reduce.
    """
    if (null_key is None) != (null_value is None):
        raise ValueError("null_key and null_value go together")
    out_dtype = query.dtype
    groups = query.shape[1] // key.shape[1]
    t_scores = text_scores(query, key, mask, scaling)  # [B,H,q,kv]
    v_text = _repeat_kv(value, groups)
    n = kb_keys.shape[0]
    total = n + (null_key is not None)

    if shard is not None:
        out = shard.kb_attention(t_scores, v_text, kb_query, kb_keys, kb_values, null_key, null_value, scaling,
                                 score_shift, chunk_size, record, top_k=top_k, keep_logits=keep_logits,
                                 grad_inputs=(query, value, kb_query, kb_keys, kb_values))
    elif top_k is not None and top_k < total:
        out = _top_k_attention(t_scores, v_text, kb_query, kb_keys, kb_values, null_key, null_value, scaling,
                               score_shift, top_k, chunk_size, record)
    elif keep_logits or (torch.is_grad_enabled() and any(
            t is not None and t.requires_grad for t in (query, value, kb_query, kb_keys, kb_values, null_key,
                                                        null_value))):
        # Training: the full score matrix, differentiable (the streamed path works in place).
        out = _dense_attention(t_scores, v_text, kb_query, kb_keys, kb_values, null_key, null_value, scaling,
                               score_shift, record)
    else:
        out = _online_attention(t_scores, v_text, kb_query, kb_keys, kb_values, null_key, null_value, scaling,
                                score_shift, chunk_size, record)
    return out.to(out_dtype).transpose(1, 2).contiguous()


def _dense_attention(t_scores, v_text, kb_query, kb_keys, kb_values, null_key, null_value, scaling, score_shift,
                     record):
    """One softmax over the full ``[KB ; null ; text]`` score matrix (keeps the graph)."""
    kb_scores = kb_logits(kb_query, kb_keys, scaling, score_shift, null_key)  # [B,H,q,N(+1)]
    if record is not None:
        record.logits = kb_scores
    lse = torch.logsumexp(torch.cat([kb_scores, t_scores], dim=-1), dim=-1, keepdim=True)
    out = torch.matmul(torch.exp(t_scores - lse), v_text.float())
    n = kb_keys.shape[0]
    p = torch.exp(kb_scores - lse)
    out = out + torch.einsum("bhqn,nhd->bhqd", p[..., :n], kb_values.float())
    if null_value is not None:
        out = out + p[..., n:] * null_value.float().unsqueeze(1)  # [B,H,q,1] x [H,1,D]
    if record is not None:
        _accumulate(record, p[:, :, -1:].detach().mean(dim=1))
    return out


def _online_attention(t_scores, v_text, kb_query, kb_keys, kb_values, null_key, null_value, scaling, score_shift,
                      chunk_size, record, *, exact_max: bool = False):
    """One pass over the KB in chunks with a running (reference, sum, output): exact softmax, no KB copies.

    The reference ``m`` of ``exp(s - m)`` is the row max of the text scores and the null
    token; every chunk is exponentiated against it (no per-chunk max pass). Any score
    above that reference by more than fp32's range would overflow: then the layer is
    recomputed with ``exact_max`` (the flash-attention rescaling by each chunk's max).
    """
    b, h, q, d = kb_query.shape
    n = kb_keys.shape[0]
    # Scaling goes into the query (q x D values, not q x N scores). KB scores are
    # s + shift; they are kept unshifted and the shift moves the text part's frame instead.
    qs = kb_query.float() * scaling
    m = _finite_max(t_scores)
    p_text = torch.exp(t_scores - m)
    l = p_text.sum(dim=-1, keepdim=True)
    acc = torch.matmul(p_text, v_text.float())
    del p_text
    m = m - score_shift
    last_scores = torch.empty(b, h, n + (null_key is not None), device=qs.device) if record is not None else None

    def absorb(s: torch.Tensor, v: torch.Tensor, update_max: bool) -> None:
        """Fold raw scores ``s`` [B,H,q,c] (overwritten) with values ``v`` [H,c,D] into (m, l, acc)."""
        nonlocal m, l
        if update_max:
            m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
            alpha = torch.exp(m - m_new)
            l.mul_(alpha)
            acc.mul_(alpha)
            m = m_new
        s.sub_(m).clamp_min_(_MIN_LOG_P).exp_()
        l.add_(s.sum(dim=-1, keepdim=True))
        acc.add_(torch.matmul(s, v))

    if null_key is not None:
        s_null = torch.matmul(qs, null_key.float().unsqueeze(-1))  # [B,H,q,1]
        if last_scores is not None:
            last_scores[..., n] = s_null[:, :, -1, 0]
        absorb(s_null, null_value.float().unsqueeze(1), True)  # [H,1,D]

    if n:
        chunk = max(1, min(chunk_size, _CACHE_CHUNK, n, _MAX_SCORE_ELEMENTS // max(1, b * h * q)))
        # fp32 work buffers reused by every chunk (views of their first elements): each chunk
        # of knowledge tokens is upcast straight from where it is stored (one contiguous
        # block per chunk when the KB is layer-major) and read by the matmuls as strided views.
        kbuf = torch.empty(chunk * h * d, dtype=torch.float32, device=qs.device)
        vbuf = torch.empty_like(kbuf)
        sbuf = torch.empty(b * h * q * chunk, dtype=torch.float32, device=qs.device)
        for lo in range(0, n, chunk):
            hi = min(n, lo + chunk)
            c = hi - lo
            k = kbuf[: c * h * d].view(c, h, d)
            k.copy_(kb_keys[lo:hi])
            s = sbuf[: b * h * q * c].view(b, h, q, c)
            torch.matmul(qs, k.permute(1, 2, 0), out=s)  # [B,H,q,D] x [H,D,c]
            if last_scores is not None:
                last_scores[..., lo:hi] = s[:, :, -1]
            v = vbuf[: c * h * d].view(c, h, d)
            v.copy_(kb_values[lo:hi])
            absorb(s, v.transpose(0, 1), exact_max)

    if not exact_max and not bool(torch.isfinite(l).all()):
        return _online_attention(t_scores, v_text, kb_query, kb_keys, kb_values, null_key, null_value, scaling,
                                 score_shift, chunk_size, record, exact_max=True)
    out = acc.div_(l)
    if record is not None:
        # lse of the last query row in the KB's unshifted frame: m + log(l)
        lse_last = (m + torch.log(l))[:, :, -1]  # [B,H,1]
        probs = last_scores.sub_(lse_last).exp_()  # [B,H,N(+1)]
        _accumulate(record, probs.mean(dim=1).unsqueeze(1))
    return out


def _top_k_attention(t_scores, v_text, kb_query, kb_keys, kb_values, null_key, null_value, scaling, score_shift,
                     top_k, chunk_size, record):
    """Keep the ``top_k`` best KB columns (null token = column N) per (batch, head, query) row."""
    n = kb_keys.shape[0]
    qs = kb_query.float() * scaling
    best_s = best_i = None
    if null_key is not None:
        best_s = torch.matmul(qs, null_key.float().unsqueeze(-1))  # [B,H,q,1]
        best_i = torch.full_like(best_s, n, dtype=torch.long)
    for lo in range(0, n, chunk_size):
        hi = min(n, lo + chunk_size)
        s = torch.matmul(qs, kb_keys[lo:hi].transpose(0, 1).float().transpose(-1, -2))  # [B,H,q,c]
        idx = torch.arange(lo, hi, device=s.device).expand_as(s)
        if best_s is not None:
            s = torch.cat([best_s, s], dim=-1)
            idx = torch.cat([best_i, idx], dim=-1)
        k = min(top_k, s.shape[-1])
        best_s, pos = torch.topk(s, k, dim=-1)
        best_i = torch.gather(idx, -1, pos)
    best_s = best_s + score_shift
    lse = torch.logsumexp(torch.cat([best_s, t_scores], dim=-1), dim=-1, keepdim=True)
    out = torch.matmul(torch.exp(t_scores - lse), v_text.float())
    p = torch.exp(best_s - lse)  # [B,H,q,k]
    # Gather the selected values per head: kb_values [N,H,D], index [B,H,q,k] (N = null token)
    b, h, q, k = best_i.shape
    is_null = best_i == n
    flat = best_i.clamp_max(max(n - 1, 0)).permute(1, 0, 2, 3).reshape(h, -1)  # [H, B*q*k]
    heads = torch.arange(h, device=flat.device).unsqueeze(-1).expand_as(flat)
    sel = kb_values[flat, heads].float() if n else torch.zeros(h, flat.shape[1], kb_values.shape[-1])
    sel = sel.view(h, b, q, k, -1).permute(1, 0, 2, 3, 4)  # [B,H,q,k,D]
    if null_value is not None:
        sel = torch.where(is_null.unsqueeze(-1), null_value.float()[None, :, None, None, :], sel)
    out = out + (p.unsqueeze(-1) * sel).sum(dim=-2)
    if record is not None:
        total = n + (null_key is not None)
        dense = torch.zeros(b, h, 1, total, dtype=p.dtype, device=p.device).scatter_(
            -1, best_i[:, :, -1:], p[:, :, -1:])
        _accumulate(record, dense.mean(dim=1))
    return out


def _accumulate(record: KBAttentionRecord, mass: torch.Tensor) -> None:
    """Add the KB attention of the last query row (the position that predicts the next token)."""
    last = mass[:, -1].float()  # [B, N]
    if record.mass_sum is None or record.mass_sum.shape != last.shape:
        record.mass_sum = last
        record.rows = torch.ones(last.shape[0], dtype=last.dtype, device=last.device)
    else:
        record.mass_sum = record.mass_sum + last
        record.rows = record.rows + 1
    record.last_probs = last
