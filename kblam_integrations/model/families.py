"""What KBLaM needs to know about each backbone family, in one table keyed by HF ``model_type``.

Adding a family is one entry in :data:`FAMILIES` (as peft's
``TRANSFORMERS_MODELS_TO_*_MAPPING``): where its decoder layers and their attention
modules are, how to read the attention's query projection (which initialises the KB
query heads) and where its rotary embedding lives (value blocks are rotated with it).
The attention layer (:mod:`..attention`) stays family-agnostic: the model layer finds
the modules here and hands them over.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from ..errors import ConfigError

QueryWeight = tuple[torch.Tensor, "torch.Tensor | None"]


def _decoder(backbone: nn.Module) -> nn.Module:
    return backbone.get_decoder() if hasattr(backbone, "get_decoder") else backbone


def _separate_q_proj(attn: nn.Module, kb_dim: int) -> QueryWeight:
    if not hasattr(attn, "q_proj"):
        raise ConfigError(f"{type(attn).__name__} has no q_proj to initialise the KB query heads from")
    return attn.q_proj.weight, attn.q_proj.bias


def _fused_qkv_proj(attn: nn.Module, kb_dim: int) -> QueryWeight:
    """Phi-3 style: the query rows come first in one fused projection."""
    w = attn.qkv_proj.weight[:kb_dim]
    b = attn.qkv_proj.bias[:kb_dim] if attn.qkv_proj.bias is not None else None
    return w, b


def _any_query_proj(attn: nn.Module, kb_dim: int) -> QueryWeight:
    """Unknown families: a separate ``q_proj`` if there is one, else a fused ``qkv_proj``."""
    if hasattr(attn, "q_proj"):
        return _separate_q_proj(attn, kb_dim)
    if hasattr(attn, "qkv_proj"):
        return _fused_qkv_proj(attn, kb_dim)
    raise ConfigError(f"{type(attn).__name__} has no q_proj/qkv_proj to initialise the KB query heads from")


@dataclass(frozen=True)
class Family:
    """How to reach one backbone family's parts (all HF decoders keep their layers in ``.layers``)."""

    query_weight: Callable[[nn.Module, int], QueryWeight]
    layers_attr: str = "layers"
    attention_attr: str = "self_attn"
    rotary_attr: str = "rotary_emb"

    def attention_modules(self, backbone: nn.Module) -> list[nn.Module]:
        """The self-attention module of every decoder layer, in order."""
        layers = getattr(_decoder(backbone), self.layers_attr, None)
        if layers is None:
            raise ConfigError(f"{type(backbone).__name__}: cannot find decoder layers (expected "
                              f"`.{self.layers_attr}`)")
        return [getattr(layer, self.attention_attr) for layer in layers]

    def rotary_embedding(self, backbone: nn.Module) -> nn.Module:
        """The decoder's shared rotary embedding."""
        return getattr(_decoder(backbone), self.rotary_attr)


_SEPARATE_Q = Family(query_weight=_separate_q_proj)
_FUSED_QKV = Family(query_weight=_fused_qkv_proj)

FAMILIES: dict[str, Family] = {
    "llama": _SEPARATE_Q,
    "qwen2": _SEPARATE_Q,
    "qwen3": _SEPARATE_Q,
    "mistral": _SEPARATE_Q,
    "gemma": _SEPARATE_Q,
    "gemma2": _SEPARATE_Q,
    "phi3": _FUSED_QKV,
}
# A model_type not in the table: the common HF layout, with either kind of query projection.
GENERIC = Family(query_weight=_any_query_proj)


def family_of(backbone: nn.Module) -> Family:
    """The :class:`Family` of a loaded backbone (by its config's ``model_type``)."""
    return FAMILIES.get(getattr(getattr(backbone, "config", None), "model_type", None), GENERIC)


def attention_modules(backbone: nn.Module) -> list[nn.Module]:
    """The self-attention module of every decoder layer of ``backbone``, in order."""
    return family_of(backbone).attention_modules(backbone)


def backbone_shape(backbone_config: Any) -> dict[str, int]:
    """The shape fields of :class:`~.config.KBLaMConfig` read from a transformers config."""
    heads = backbone_config.num_attention_heads
    head_dim = getattr(backbone_config, "head_dim", None) or backbone_config.hidden_size // heads
    return dict(num_hidden_layers=backbone_config.num_hidden_layers, hidden_size=backbone_config.hidden_size,
                num_attention_heads=heads, head_dim=head_dim)
