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

    def tail_keys(self, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(rows [m], keys [layers, H*D, m] fp32)``: the fixed random sample of rows, every KB layer."""


class IndexedRetrieval:
    """One forward's indexed retrieval: collects each KB layer's query, scores them all at the last.

    ``keys``: the KB's ``[N, layers, H * D]`` knowledge-token keys (read in place).
    """

    def __init__(self, search: CandidateSearch, keys: torch.Tensor, null_keys: torch.Tensor | None):
        self.search, self.keys, self.null_keys = search, keys, null_keys
        self.seen: dict[int, torch.Tensor] = {}
        self.scaling = 1.0

    @property
    def complete(self) -> bool:
        return len(self.seen) == self.keys.shape[1]

    def observe(self, slot: int, query: torch.Tensor, scaling: float) -> None:
        """Keep KB layer ``slot``'s prompt-mean query ``[B, H, D]``."""
        self.seen[slot] = query
        self.scaling = scaling

    def finish(self) -> torch.Tensor:
        """``[layers, B, N (+1 null)]`` retrieval probabilities, non-zero on the candidates only.

        Every layer is scored in one batched product per question: the candidates' keys of all
        KB layers are gathered at once from the KB's ``[N, layers, H * D]`` storage.
        """
        q = torch.stack([self.seen[s] for s in range(self.keys.shape[1])])  # [L,B,H,D]
        self.seen = {}
        num_layers, b, h, d = q.shape
        n = self.keys.shape[0]
        has_null = self.null_keys is not None
        rows_all = self.search.candidates(q.flatten(2), self.scaling)
        tail_rows, tail_keys = self.search.tail_keys(self.keys)  # [m], [L, H*D, m]
        tail_logits = torch.einsum("lbhd,lhdm->lbhm", q, tail_keys.view(num_layers, h, d, -1)) * self.scaling
        null_logits = None
        if has_null:
            null_logits = torch.einsum("lbhd,lhd->lbh", q, self.null_keys.float().view(num_layers, h, d))
            null_logits = null_logits.unsqueeze(-1) * self.scaling  # [L,B,H,1]
        out = torch.zeros(num_layers, b, n + has_null, dtype=torch.float32, device=q.device)
        for i in range(b):
            rows = rows_all[i][rows_all[i] >= 0].to(q.device)
            cand = self.keys[rows].float().view(len(rows), num_layers, h, d)
            logits = torch.einsum("lhd,clhd->lhc", q[:, i], cand) * self.scaling  # [L,H,c]
            parts = [logits] + ([null_logits[:, i]] if has_null else [])
            taken = torch.zeros(n, dtype=torch.bool, device=q.device)
            taken[rows] = True
            outside = ~taken[tail_rows]
            left, sampled = n - len(rows), int(outside.sum())
            if left > 0 and sampled:
                # each sampled row outside the candidates stands for left / sampled rows
                parts.append(tail_logits[:, i][..., outside] + math.log(left / sampled))
            lse = torch.logsumexp(torch.cat(parts, dim=-1), dim=-1, keepdim=True)  # [L,H,1]
            out[:, i, rows] = torch.exp(logits - lse).mean(1)
            if has_null:
                out[:, i, n] = torch.exp(null_logits[:, i, :, 0] - lse[..., 0]).mean(1)
        return out
