"""Multi-token knowledge values: a selected triple's own backbone states, attended as a block.

The paper gives each triple one value vector per KB layer, from a linear adapter on a
sentence embedding. A 135M backbone cannot decode a name or a number from one such
vector at the training budgets a CPU allows (see ``docs/training.md#pure-mode``), so
pure mode here reads values as the backbone reads any text: a triple's value block
is the key/value states the frozen backbone computes for the triple's fact sentence
*on its own* (positions ``0..m-1``, no other text in view). Blocks are independent of
each other and of the prompt, so triples are still added and removed without touching
the rest, and the KB's text never enters the prompt.

In a value layer, every prompt row at or after ``visible_from`` attends to
``[blocks ; causal prefix]`` in one softmax (rectangular: blocks never attend to the
prompt). Block keys are re-rotated (RoPE) to sit just before ``visible_from``. Each
block's scores get ``log p`` of its triple's retrieval probability (renormalised over
the selected triples), so the weight mixing the values is the trained key attention.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .rectangular import _repeat_kv, text_scores


@dataclass
class ValueBlocks:
    """Value blocks of the selected triples, ready for attention.

    keys / values: layer -> ``[KVH, M, D]`` (keys already rotated to their positions);
    ``log_prior``: ``[M]`` added to every block score (the triple's log retrieval
    probability); ``visible_from``: absolute position of the first prompt row that sees
    the blocks.
    """

    keys: dict[int, torch.Tensor]
    values: dict[int, torch.Tensor]
    log_prior: torch.Tensor
    visible_from: int

    @property
    def layers(self) -> set[int]:
        return set(self.keys)


def rotate(keys: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Apply a RoPE rotation (``cos``/``sin`` of shape ``[M, D]``) to ``[..., M, D]`` keys."""
    half = keys.shape[-1] // 2
    rotated = torch.cat((-keys[..., half:], keys[..., :half]), dim=-1)
    return keys * cos + rotated * sin


def block_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None,
                    scaling: float, blocks: ValueBlocks, layer: int) -> torch.Tensor:
    """Attention output ``[B, q, H, D]`` over ``[value blocks ; causal text prefix]``."""
    out_dtype = query.dtype
    groups = query.shape[1] // key.shape[1]
    t_scores = text_scores(query, key, mask, scaling)  # [B,H,q,kv]
    bk = _repeat_kv(blocks.keys[layer].unsqueeze(0).float(), groups)  # [1,H,M,D]
    bv = _repeat_kv(blocks.values[layer].unsqueeze(0).float(), groups)
    b_scores = torch.matmul(query.float(), bk.transpose(-1, -2)) * scaling + blocks.log_prior.float()
    q_len, kv_len = t_scores.shape[-2:]
    rows = torch.arange(q_len, device=query.device) + (kv_len - q_len)
    hidden = (rows < blocks.visible_from).view(1, 1, q_len, 1)
    b_scores = b_scores.masked_fill(hidden, float("-inf"))
    probs = torch.softmax(torch.cat([b_scores, t_scores], dim=-1), dim=-1)
    m = b_scores.shape[-1]
    out = torch.matmul(probs[..., :m], bv) + torch.matmul(probs[..., m:], _repeat_kv(value, groups).float())
    return out.to(out_dtype).transpose(1, 2).contiguous()


def build_value_blocks(states: list, priors: torch.Tensor, visible_from: int, layers: list[int],
                       rotary: torch.nn.Module) -> ValueBlocks:
    """Lay the selected triples' states out just before ``visible_from`` and rotate their keys there.

    ``states``: :class:`~..encoding.value_states.TripleStates` of the selected triples (best
    first); ``priors``: their retrieval probabilities; ``rotary``: the backbone's rotary
    embedding module (``rotary(x, position_ids) -> (cos, sin)``). The first selected
    triple sits closest to the prompt.
    """
    lengths = [s.length for s in states]
    total = sum(lengths)
    starts, pos = [], visible_from
    for m in lengths:  # best first = nearest the prompt
        pos -= m
        starts.append(pos)
    p = priors.float().clamp_min(1e-12)
    log_prior = torch.cat([torch.full((m,), float(torch.log(pi / p.sum()))) for m, pi in zip(lengths, p)])
    keys, values = {}, {}
    ref = states[0].keys
    cos_sin = []
    for s, start in zip(states, starts):
        shift = torch.full((1, 1), start, dtype=torch.long)
        cos, sin = rotary(ref, shift)  # rotation by `start` (relative to the stored 0..m-1)
        scale = float(getattr(rotary, "attention_scaling", 1.0) or 1.0)
        cos_sin.append((cos[0].float() / scale, sin[0].float() / scale))
    # reversed layout: positions increase towards the prompt
    order = list(range(len(states)))[::-1]
    for layer in layers:
        keys[layer] = torch.cat([_rotate_part(states[i].keys[layer], *cos_sin[i]) for i in order], dim=1)
        values[layer] = torch.cat([states[i].values[layer] for i in order], dim=1)
    log_prior = torch.cat([log_prior[sum(lengths[:i]):sum(lengths[:i + 1])] for i in order])
    assert keys[layers[0]].shape[1] == total
    return ValueBlocks(keys=keys, values=values, log_prior=log_prior, visible_from=visible_from)


def _rotate_part(keys: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the first ``cos.shape[-1]`` dims (partial rotary embeddings leave the rest)."""
    r = cos.shape[-1]
    if r == keys.shape[-1]:
        return rotate(keys, cos, sin)
    return torch.cat([rotate(keys[..., :r], cos, sin), keys[..., r:]], dim=-1)
