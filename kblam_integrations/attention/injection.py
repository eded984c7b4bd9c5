"""Inject rectangular attention into any Hugging Face decoder without forking its modeling file.

As peft does for adapters, we leave the model's code alone and use the extension
points transformers provides:

* an attention function registered in ``AttentionInterface`` (plus the matching mask
  function in ``AttentionMaskInterface``) that falls back to the model's original
  implementation whenever no KB is active or the layer is not a KB layer, so an empty
  KB gives exactly the base model;
* a forward pre-hook on each KB layer's attention module that computes the KB query
  states (a separate, trainable projection, no rotary embedding) from the layer's
  hidden states.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn
from transformers import AttentionInterface
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from ..errors import ConfigError
from .context import KBAttentionRecord, active_kb
from .indexed_scoring import IndexedRetrieval
from .rectangular import _accumulate, kb_logits, rectangular_attention
from .scoring import kb_retrieval_probs, prompt_mean_query
from .value_blocks import block_attention

KBLAM_ATTENTION = "kblam"
_SUPPORTED_BASES = ("sdpa", "eager")


def _impl_name(base: str) -> str:
    return f"{KBLAM_ATTENTION}_{base}"


def _base_forward(base: str):
    if base == "eager":
        # Every model's eager function has the same contract; use a generic one.
        return _eager_forward
    return ALL_ATTENTION_FUNCTIONS[base]


def _eager_forward(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    from .rectangular import text_scores

    groups = query.shape[1] // key.shape[1]
    scores = text_scores(query, key, attention_mask, scaling)
    probs = torch.softmax(scores, dim=-1).to(query.dtype)
    v = value if groups == 1 else value.repeat_interleave(groups, dim=1)
    return torch.matmul(probs, v).transpose(1, 2).contiguous(), probs


def _make_attention(base: str):
    base_forward = _base_forward(base)

    def kblam_attention_forward(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                                attention_mask: torch.Tensor | None, scaling: float | None = None,
                                dropout: float = 0.0, **kwargs: Any):
        ctx = active_kb()
        layer = getattr(module, "layer_idx", None)
        if ctx is not None and ctx.value_blocks is not None and layer in ctx.value_blocks.layers:
            scale = scaling if scaling is not None else query.shape[-1] ** -0.5
            return block_attention(query, key, value, attention_mask, scale, ctx.value_blocks, layer), None
        if ctx is None or ctx.num_tokens == 0 or layer not in ctx.layer_map:
            return base_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs)
        kb_query = ctx.kb_queries.pop(layer, None)
        if kb_query is None:
            raise RuntimeError(f"KB query states for layer {layer} are missing; was the KB injected into this model?")
        j = ctx.layer_map[layer]
        n, h, d = ctx.keys.shape[0], query.shape[1], query.shape[-1]
        record = None
        if ctx.record or ctx.keep_logits:
            record = ctx.records.setdefault(layer, KBAttentionRecord())
        scale = scaling if scaling is not None else d ** -0.5
        # Strided views of the KB's own storage (no copy); the null token rides alongside.
        kb_keys, kb_values = ctx.keys[:, j].view(n, h, d), ctx.values[:, j].view(n, h, d)
        null_k = ctx.null_keys[j].view(h, d) if ctx.null_keys is not None else None
        null_v = ctx.null_values[j].view(h, d) if ctx.null_values is not None else None
        if ctx.scores_only:
            rows = _prompt_rows(attention_mask, query)
            if ctx.row_weights is not None and ctx.row_weights.shape[-1] == query.shape[2]:
                rows = ctx.row_weights if rows is None else rows.float() * ctx.row_weights
            if ctx.key_search is not None:
                _indexed_scores(ctx, j, prompt_mean_query(kb_query, rows), scale)
            else:
                retrieval_probs = kb_retrieval_probs if ctx.shard is None else ctx.shard.retrieval_probs
                probs = retrieval_probs(kb_query, kb_keys, scale, null_key=null_k, row_mask=rows,
                                        chunk_size=ctx.chunk_size)
                _accumulate(ctx.records.setdefault(layer, KBAttentionRecord()), probs.unsqueeze(1))
            return base_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs)
        if ctx.detach_query_input:
            # Retrieval training: the backbone runs without autograd; only the KB logits
            # (query head x key adapter) keep a graph.
            with torch.no_grad():
                out = rectangular_attention(query, key, value, attention_mask, scale, kb_query.detach(),
                                            kb_keys.detach(), kb_values.detach(),
                                            null_key=None if null_k is None else null_k.detach(),
                                            null_value=None if null_v is None else null_v.detach(),
                                            score_shift=ctx.score_shift, chunk_size=ctx.chunk_size, top_k=ctx.top_k,
                                            shard=ctx.shard)
            if record is not None:
                with torch.enable_grad():  # re-slice: views taken under no_grad carry no graph
                    null_j = ctx.null_keys[j].view(h, d) if ctx.null_keys is not None else None
                    record.logits = kb_logits(kb_query, ctx.keys[:, j].view(n, h, d), scale, ctx.score_shift, null_j)
            return out, None
        out = rectangular_attention(
            query, key, value, attention_mask, scale, kb_query, kb_keys, kb_values,
            null_key=null_k, null_value=null_v,
            score_shift=ctx.score_shift, chunk_size=ctx.chunk_size, top_k=ctx.top_k,
            record=record, keep_logits=ctx.keep_logits, shard=ctx.shard,
        )
        return out, None

    return kblam_attention_forward


def _indexed_scores(ctx, slot: int, query: torch.Tensor, scaling: float) -> None:
    """Hand KB layer ``slot``'s query to the call's :class:`IndexedRetrieval`; after the last KB layer,
    record every layer's probabilities (the backbone's outputs do not depend on them)."""
    if ctx.indexed is None:
        ctx.indexed = IndexedRetrieval(ctx.key_search, ctx.keys, ctx.null_keys)
    ctx.indexed.observe(slot, query, scaling)
    if ctx.indexed.complete:
        probs = ctx.indexed.finish()
        for layer, j in ctx.layer_map.items():
            _accumulate(ctx.records.setdefault(layer, KBAttentionRecord()), probs[j].unsqueeze(1))


def _prompt_rows(mask: torch.Tensor | None, query: torch.Tensor) -> torch.Tensor | None:
    """``[B, q]`` non-padding query rows in a prefill, read off the mask row of the last token."""
    if mask is None:
        return None
    q_len = query.shape[2]
    last = mask[:, 0, -1, -q_len:]
    return last if mask.dtype == torch.bool else last > torch.finfo(mask.dtype).min / 2


def _register(base: str) -> str:
    name = _impl_name(base)
    if name not in ALL_ATTENTION_FUNCTIONS._global_mapping:
        AttentionInterface.register(name, _make_attention(base))
        AttentionMaskInterface.register(name, ALL_MASK_ATTENTION_FUNCTIONS._global_mapping[base])
    return name


def _kb_query_hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
    ctx = active_kb()
    if ctx is None or ctx.num_tokens == 0 or module.layer_idx not in ctx.layer_map:
        return None
    hidden = kwargs.get("hidden_states", args[0] if args else None)
    proj = ctx.query_projections[module.layer_idx]
    if ctx.detach_query_input:
        with torch.enable_grad():
            q = proj(hidden.detach().to(proj.weight.dtype))
    else:
        q = proj(hidden.to(proj.weight.dtype))
    b, s = hidden.shape[:2]
    ctx.kb_queries[module.layer_idx] = q.view(b, s, -1, module.head_dim).transpose(1, 2)
    return None


def inject_kb_attention(backbone: nn.Module, kb_layers: list[int], modules: Sequence[nn.Module]) -> None:
    """Make ``backbone`` KB-aware (idempotent). Without an active KB it is unchanged.

    ``modules``: the self-attention module of every decoder layer (the model layer knows
    where each family keeps them, see ``model/families.py``)."""
    current = backbone.config._attn_implementation
    if current and current.startswith(KBLAM_ATTENTION + "_"):
        base = current[len(KBLAM_ATTENTION) + 1:]
    else:
        base = current or "sdpa"
        if base not in _SUPPORTED_BASES:
            base = "sdpa"  # flash/flex kernels cannot mix in knowledge tokens; sdpa is exact
    name = _register(base)
    backbone.set_attn_implementation(name)
    if backbone.config._attn_implementation != name:
        backbone.config._attn_implementation_internal = name
    for idx in kb_layers:
        if not 0 <= idx < len(modules):
            raise ConfigError(f"KB layer {idx} out of range for a {len(modules)}-layer backbone", )
        attn = modules[idx]
        if not getattr(attn, "_kblam_hooked", False):
            attn.register_forward_pre_hook(_kb_query_hook, with_kwargs=True)
            attn._kblam_hooked = True
