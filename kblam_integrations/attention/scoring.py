"""Retrieval scores from KBLaM's KB attention, without changing the forward pass.

Grounded mode and the retrieval metrics need "which triples does this question
attend to", not the mixed attention output. A *scores-only* pass computes the KB
attention logits (``q_kb . k_kb / sqrt(d)``) of every prompt position in every KB
layer, averages them over the prompt's positions (a question's entity and property
sit at different positions; the mean sees both, as the sentence encoder's mean
pooling does on the key side), turns them into a distribution over the knowledge
tokens (softmax over [triples ; null token], averaged over heads) and leaves the backbone's own attention
untouched, so the hidden states the KB query heads read are exactly the base model's:
the same features the retrieval heads were trained on.
"""

from __future__ import annotations

import torch


def kb_retrieval_probs(kb_query: torch.Tensor, kb_keys: torch.Tensor, scaling: float, *,
                       null_key: torch.Tensor | None = None, row_mask: torch.Tensor | None = None,
                       chunk_size: int = 4096) -> torch.Tensor:
    """Per-triple retrieval probabilities ``[B, N (+1 null)]`` from the prompt-averaged KB logits.

    Args:
        kb_query: ``[B, H, q, D]`` KB query states of the prompt.
        row_mask: ``[B, q]`` weight of each prompt position (0 for padding); None: all alike.
        kb_keys: ``[N, H, D]`` knowledge-token keys of this layer (any float dtype; upcast
            one chunk at a time, so no fp32 copy of the whole KB is made).
        null_key: ``[H, D]`` key of the learned null token, appended as the last column.
    """
    q = prompt_mean_query(kb_query, row_mask)
    n = kb_keys.shape[0]
    logits = torch.empty(q.shape[0], q.shape[1], n + (null_key is not None), dtype=torch.float32, device=q.device)
    for lo in range(0, n, chunk_size):
        hi = min(n, lo + chunk_size)
        logits[..., lo:hi] = torch.einsum("bhd,nhd->bhn", q, kb_keys[lo:hi].float())
    if null_key is not None:
        logits[..., n] = torch.einsum("bhd,hd->bh", q, null_key.float())
    return torch.softmax(logits * scaling, dim=-1).mean(dim=1)


def prompt_mean_query(kb_query: torch.Tensor, row_mask: torch.Tensor | None = None) -> torch.Tensor:
    """``[B, H, D]``: the KB query averaged over the prompt rows (weighted by ``row_mask`` ``[B, q]``);
    the mean logit over rows is the logit of this mean query."""
    if row_mask is None:
        return kb_query.float().mean(dim=2)
    m = row_mask.to(torch.float32)[:, None, :, None]
    return (kb_query.float() * m).sum(2) / m.sum(2).clamp_min(1)
