"""Retrieval scores from an index's candidates instead of a scan over every knowledge token.

The scores-only pass (:mod:`.scoring`) turns the prompt-mean KB query into a softmax over
[all triples ; null token] per head. Here an index (see
:class:`~kblam_integrations.encoding.key_index.KeySearch`) proposes the candidate rows;
their scores and the null token's are exact. The softmax's normaliser also needs the mass
of the triples *not* proposed: it is estimated from a fixed random sample of rows
(scaled to the number of rows left), so probabilities, and the null token's share that
refusal reads, stay calibrated. Rows outside the candidates get probability 0. When the
candidates cover the whole KB, the result equals :func:`.scoring.kb_retrieval_probs`.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch

from .scoring import prompt_mean_query


class CandidateSearch(Protocol):
    tail_rows: torch.Tensor

    def candidates(self, slot: int, query: torch.Tensor) -> torch.Tensor:
        """Rows ``[B, k]`` (-1 padded) for ``query`` ``[B, H * D]`` in KB layer ``slot``."""


def indexed_retrieval_probs(kb_query: torch.Tensor, kb_keys: torch.Tensor, scaling: float, *,
                            search: CandidateSearch, slot: int, null_key: torch.Tensor | None = None,
                            row_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-triple retrieval probabilities ``[B, N (+1 null)]``, non-zero on the index's candidates only."""
    q = prompt_mean_query(kb_query, row_mask)  # [B,H,D]
    b, h, d = q.shape
    n = kb_keys.shape[0]
    out = torch.zeros(b, n + (null_key is not None), dtype=torch.float32, device=q.device)
    proposed = search.candidates(slot, q.reshape(b, h * d))
    for i in range(b):
        rows = proposed[i][proposed[i] >= 0].unique().to(q.device)
        parts = [torch.einsum("hd,chd->hc", q[i], kb_keys[rows].float()) * scaling]
        if null_key is not None:
            parts.append((torch.einsum("hd,hd->h", q[i], null_key.float()) * scaling).unsqueeze(-1))
        tail = search.tail_rows.to(q.device)
        tail = tail[~torch.isin(tail, rows)]
        left = n - len(rows)
        if left > 0 and len(tail):
            s_tail = torch.einsum("hd,chd->hc", q[i], kb_keys[tail].float()) * scaling
            parts.append(s_tail + math.log(left / len(tail)))  # each sampled row stands for left/len(tail) rows
        lse = torch.logsumexp(torch.cat(parts, dim=-1), dim=-1, keepdim=True)  # [H,1]
        out[i, rows] = torch.exp(parts[0] - lse).mean(0)
        if null_key is not None:
            out[i, n] = torch.exp(parts[1] - lse).mean()
    return out
