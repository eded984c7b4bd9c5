"""The math of KBLaM's rectangular attention, one KB layer.

One softmax runs over [knowledge tokens ; causal text prefix]. Text scores are the
backbone's own (RoPE, causal/padding mask, GQA); KB scores are ``q_kb . k_kb / sqrt(d)``
(+ the KB-size shift). Knowledge tokens are never queries, so cost is
O(q_len x kb_len). The KB part is processed in chunks with a two-pass (log-sum-exp
then accumulate) softmax so that no ``heads x q_len x kb_len`` matrix is held at once.
"""

from __future__ import annotations

import torch

from .context import KBAttentionRecord


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
    score_shift: float = 0.0,
    chunk_size: int = 4096,
    top_k: int | None = None,
    record: KBAttentionRecord | None = None,
    keep_logits: bool = False,
) -> torch.Tensor:
    """Attention output ``[B, q, H, D]`` for one KB layer.

    Args:
        query, key, value: the backbone's states (``[B, H, q, D]``, ``[B, KVH, kv, D]``).
        mask: the backbone's mask (bool, additive float, or None = causal).
        kb_query: ``[B, H, q, D]`` KB query states (no rotary embedding).
        kb_keys, kb_values: ``[N, H, D]`` knowledge tokens of this layer (any float dtype).
        top_k: keep only the k best-scoring knowledge tokens per query row.
        record: accumulate per-token attention mass into this record.
        keep_logits: store the raw KB scores in ``record.logits`` (graph attached).
    """
    out_dtype = query.dtype
    groups = query.shape[1] // key.shape[1]
    t_scores = text_scores(query, key, mask, scaling)  # [B,H,q,kv]
    qk = kb_query.float()
    n = kb_keys.shape[0]
    kk, kv_ = kb_keys, kb_values  # stay in storage dtype; chunks are upcast one at a time

    def kb_chunk_scores(lo: int, hi: int) -> torch.Tensor:
        # [B,H,q,D] x [n,H,D] -> [B,H,q,n]
        return torch.einsum("bhqd,nhd->bhqn", qk, kk[lo:hi].float()) * scaling + score_shift

    if top_k is not None and top_k < n:
        return _top_k_attention(t_scores, value, groups, qk, kk, kv_, kb_chunk_scores, n, top_k, chunk_size,
                                record, out_dtype)

    single = n <= chunk_size or keep_logits
    if single:
        kb_scores = kb_chunk_scores(0, n)
        if record is not None and keep_logits:
            record.logits = kb_scores
        lse = torch.logsumexp(torch.cat([kb_scores, t_scores], dim=-1), dim=-1, keepdim=True)
    else:
        # Pass 1: log-sum-exp over KB chunks and text.
        lse = torch.logsumexp(t_scores, dim=-1, keepdim=True)
        for lo in range(0, n, chunk_size):
            lse = torch.logaddexp(lse, torch.logsumexp(kb_chunk_scores(lo, lo + chunk_size), dim=-1, keepdim=True))

    v_text = _repeat_kv(value, groups).float()
    out = torch.matmul(torch.exp(t_scores - lse), v_text)  # [B,H,q,D]
    mass_parts = []
    for lo in range(0, n, chunk_size if not single else max(n, 1)):
        hi = min(n, lo + (chunk_size if not single else n))
        s = kb_scores if single else kb_chunk_scores(lo, hi)
        p = torch.exp(s - lse)  # [B,H,q,c]
        out = out + torch.einsum("bhqn,nhd->bhqd", p, kv_[lo:hi].float())
        if record is not None:
            mass_parts.append(p[:, :, -1:].detach().mean(dim=1))  # [B,1,c]: last row only
    if record is not None:
        _accumulate(record, torch.cat(mass_parts, dim=-1))
    return out.to(out_dtype).transpose(1, 2).contiguous()


def _top_k_attention(t_scores, value, groups, qk, kk, kv_, kb_chunk_scores, n, top_k, chunk_size, record, out_dtype):
    """Keep the ``top_k`` best knowledge tokens per (batch, head, query) row; chunked selection."""
    best_s = best_i = None
    for lo in range(0, n, chunk_size):
        s = kb_chunk_scores(lo, min(n, lo + chunk_size))
        idx = torch.arange(lo, lo + s.shape[-1], device=s.device).expand_as(s)
        if best_s is not None:
            s = torch.cat([best_s, s], dim=-1)
            idx = torch.cat([best_i, idx], dim=-1)
        k = min(top_k, s.shape[-1])
        best_s, pos = torch.topk(s, k, dim=-1)
        best_i = torch.gather(idx, -1, pos)
    lse = torch.logsumexp(torch.cat([best_s, t_scores], dim=-1), dim=-1, keepdim=True)
    v_text = _repeat_kv(value, groups).float()
    out = torch.matmul(torch.exp(t_scores - lse), v_text)
    p = torch.exp(best_s - lse)  # [B,H,q,k]
    # Gather selected values per head: kv_ [N,H,D] -> [H,N,D], index [B,H,q,k]
    b, h, q, k = best_i.shape
    flat = best_i.permute(1, 0, 2, 3).reshape(h, -1)  # [H, B*q*k]
    heads = torch.arange(h, device=flat.device).unsqueeze(-1).expand_as(flat)
    sel = kv_[flat, heads].float()  # [H,B*q*k,D]
    sel = sel.view(h, b, q, k, -1).permute(1, 0, 2, 3, 4)  # [B,H,q,k,D]
    out = out + (p.unsqueeze(-1) * sel).sum(dim=-2)
    if record is not None:
        dense = torch.zeros(b, h, 1, n, dtype=p.dtype, device=p.device).scatter_(-1, best_i[:, :, -1:], p[:, :, -1:])
        _accumulate(record, dense.mean(dim=1))
    return out.to(out_dtype).transpose(1, 2).contiguous()


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
