"""Cached KB-query features: what each KB layer's query head reads, for every training question.

The backbone is frozen and the retrieval pass (:mod:`..attention.scoring`) leaves its
forward unchanged, so the input of a KB query head at the last prompt position is a
fixed function of the question. Computing it once per question (one batched prefill)
turns retrieval training into small matrix products: thousands of optimiser steps a
minute on a CPU instead of one every few seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from ..model.families import attention_modules
from .tensor_cache import cached_tensors


@torch.no_grad()
def extract_query_features(model, questions: Sequence[str], layers: Sequence[int], *, batch_size: int = 32,
                           progress: bool = True) -> torch.Tensor:
    """``[Q, len(layers), hidden]`` fp16: each layer's attention input, averaged over the prompt's tokens.

    The retrieval score averages the KB logits over every prompt position (see
    :mod:`..attention.scoring`); the query heads are linear, so the mean of the inputs is
    all that is needed. The chat-template prefix every prompt shares (system prompt) is
    run once and reused through the KV cache; each batch runs only the question tokens
    (right-padded) and stops after the deepest requested layer.
    """
    import copy
    import inspect

    from tqdm.auto import tqdm

    modules = attention_modules(model.backbone)
    device = next(model.backbone.parameters()).device
    all_ids = [model.prompt_ids(q)[0].cpu() for q in questions]
    prefix = _common_prefix(all_ids)
    p = len(prefix)
    captured: dict[int, torch.Tensor] = {}
    # mask: real suffix tokens (None: all); stop: end the forward after the deepest layer
    state: dict = {"mask": None, "stop": False}
    last = max(layers)

    class _Stop(Exception):
        pass

    def hook_for(layer: int):
        def hook(module, args, kwargs):
            hidden = kwargs.get("hidden_states", args[0] if args else None).float()
            m = state["mask"]
            captured[layer] = hidden.sum(1) if m is None else (hidden * m.unsqueeze(-1)).sum(1)
            if state["stop"] and layer == last:
                raise _Stop
        return hook

    handles = [modules[l].register_forward_pre_hook(hook_for(l), with_kwargs=True) for l in layers]
    out = torch.empty(len(questions), len(layers), model.config.hidden_size, dtype=torch.float16)
    try:
        # the shared prefix, run once to full depth: its per-layer hidden sums and its KV cache
        cache = None
        # transformers renamed `past_key_values` to `cache` (5.2x); use whichever this version takes
        cache_arg = "cache" if "cache" in inspect.signature(model.backbone.forward).parameters else "past_key_values"
        if p:
            res = model.backbone(input_ids=prefix[None].to(device), use_cache=True)
            cache = getattr(res, "cache", None) or res.past_key_values
        prefix_sums = dict(captured)
        state["stop"] = True
        order = sorted(range(len(all_ids)), key=lambda i: len(all_ids[i]))  # similar lengths: little padding
        pad = model.tokenizer.pad_token_id
        for lo in tqdm(range(0, len(order), batch_size), disable=not progress, desc="query features"):
            idx = order[lo:lo + batch_size]
            seqs = [all_ids[i][p:] for i in idx]
            width = max(len(x) for x in seqs)
            ids = torch.full((len(seqs), width), pad, dtype=torch.long)
            mask = torch.zeros(len(seqs), width)
            for i, x in enumerate(seqs):
                ids[i, : len(x)] = x
                mask[i, : len(x)] = 1
            state["mask"] = mask.to(device)
            kwargs = {}
            if cache is not None:
                batch_cache = copy.deepcopy(cache)
                batch_cache.batch_repeat_interleave(len(seqs))
                kwargs = {cache_arg: batch_cache, "use_cache": True,
                          "position_ids": (torch.arange(width) + p).expand(len(seqs), -1).to(device)}
            full_mask = torch.cat([torch.ones(len(seqs), p), mask], dim=1).long().to(device)
            captured.clear()
            try:
                model.backbone(input_ids=ids.to(device), attention_mask=full_mask, **kwargs)
            except _Stop:
                pass
            n = mask.sum(1, keepdim=True).to(device) + p
            feats = [(captured[l] + prefix_sums.get(l, 0.0)) / n for l in layers]
            out[idx] = torch.stack(feats, dim=1).to(torch.float16).cpu()
    finally:
        for h in handles:
            h.remove()
    return out


def _common_prefix(seqs: Sequence[torch.Tensor]) -> torch.Tensor:
    """The longest token prefix shared by all prompts, minus one token (every suffix is non-empty)."""
    first = seqs[0]
    n = min(len(x) for x in seqs) - 1
    for x in seqs[1:]:
        neq = (x[:n] != first[:n]).nonzero()
        if len(neq):
            n = int(neq[0])
    return first[:max(n, 0)]


def cached_query_features(model, questions: Sequence[str], layers: Sequence[int], file: Path, **kwargs
                          ) -> torch.Tensor:
    """:func:`extract_query_features`, stored in (and reused from) a safetensors file."""
    return cached_tensors(
        file,
        lambda: {"features": extract_query_features(model, questions, layers, **kwargs),
                 "layers": torch.tensor(list(layers))},
        valid=lambda d: d["features"].shape[0] == len(questions) and d["layers"].tolist() == list(layers),
    )["features"]
