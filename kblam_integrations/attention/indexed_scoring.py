"""Retrieval scores from an index's candidates instead of a scan over every knowledge token.

The scores-only pass (:mod:`.scoring`) turns the prompt-mean KB query into a softmax over
[all triples ; null token] per head and KB layer. Over an indexed KB
(:class:`~kblam_integrations.encoding.key_index.KeySearch`), each KB layer only hands
its prompt-mean query over; once the last KB layer has done so, the index proposes
candidate rows for every layer's query and for their sum at once, and the union of
candidates is scored exactly in *every* KB layer (a triple found through one layer is
not missing from the others). The softmax normaliser also needs the mass of the rows not
proposed: it is estimated from a fixed random sample of rows scaled to the number of
rows left, so probabilities, and the null token's share that refusal reads, stay
calibrated. Rows outside the candidates get probability 0. When the candidates cover the
whole KB, the result equals :func:`.scoring.kb_retrieval_probs`.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch


class CandidateSearch(Protocol):
    """What an index offers the attention side (see ``encoding/key_index.KeySearch``)."""

    def candidates(self, queries: torch.Tensor, scaling: float) -> torch.Tensor:
        """Rows ``[B, c]`` (-1 padded) for per-layer queries ``[layers, B, H * D]``."""

    def tail_keys(self, slot: int, kb_keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(rows [m], keys [H, D, m] fp32)``: the fixed random sample of rows of KB layer ``slot``."""


class IndexedRetrieval:
    """One forward's indexed retrieval: collects each KB layer's query, scores them all at the last."""

    def __init__(self, search: CandidateSearch, num_slots: int):
        self.search, self.num_slots = search, num_slots
        self.seen: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, float]] = {}

    @property
    def complete(self) -> bool:
        return len(self.seen) == self.num_slots

    def observe(self, slot: int, query: torch.Tensor, kb_keys: torch.Tensor, null_key: torch.Tensor | None,
                scaling: float) -> None:
        """Keep KB layer ``slot``'s prompt-mean query ``[B, H, D]`` and its keys ``[N, H, D]`` (a view)."""
        self.seen[slot] = (query, kb_keys, null_key, scaling)

    def finish(self) -> dict[int, torch.Tensor]:
        """``{slot: [B, N (+1 null)]}`` retrieval probabilities, non-zero on the candidates only."""
        slots = sorted(self.seen)
        queries = torch.stack([self.seen[s][0].flatten(1) for s in slots])  # [S, B, H*D]
        scaling = self.seen[slots[0]][3]
        rows_all = self.search.candidates(queries, scaling)
        out = {}
        for s in slots:
            q, kb_keys, null_key, scaling = self.seen[s]
            tail_rows, tail_keys = self.search.tail_keys(s, kb_keys)
            out[s] = _layer_probs(q, kb_keys, null_key, scaling, rows_all, tail_rows, tail_keys)
        self.seen.clear()
        return out


def _layer_probs(q, kb_keys, null_key, scaling, rows_all, tail_rows, tail_keys) -> torch.Tensor:
    b, h, _ = q.shape
    n = kb_keys.shape[0]
    out = torch.zeros(b, n + (null_key is not None), dtype=torch.float32, device=q.device)
    tail_logits = torch.bmm(q.transpose(0, 1), tail_keys).transpose(0, 1) * scaling  # [B,H,m]
    for i in range(b):
        rows = rows_all[i][rows_all[i] >= 0].to(q.device)
        parts = [torch.einsum("hd,chd->hc", q[i], kb_keys[rows].float()) * scaling]
        if null_key is not None:
            parts.append((torch.einsum("hd,hd->h", q[i], null_key.float()) * scaling).unsqueeze(-1))
        outside = ~torch.isin(tail_rows, rows)
        left, sampled = n - len(rows), int(outside.sum())
        if left > 0 and sampled:
            # each sampled row outside the candidates stands for left / sampled rows
            parts.append(tail_logits[i][:, outside] + math.log(left / sampled))
        lse = torch.logsumexp(torch.cat(parts, dim=-1), dim=-1, keepdim=True)  # [H,1]
        out[i, rows] = torch.exp(parts[0] - lse).mean(0)
        if null_key is not None:
            out[i, n] = torch.exp(parts[1] - lse).mean()
    return out
