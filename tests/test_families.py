"""The per-family table: each family's attention modules, query projection and rotary embedding."""

import pytest
import torch
from torch import nn

from kblam_integrations.errors import ConfigError
from kblam_integrations.model.families import FAMILIES, GENERIC, attention_modules, backbone_shape, family_of

from .conftest import tiny_backbone


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_tiny_backbones_are_table_entries(family):
    bb = tiny_backbone(family)
    fam = family_of(bb)
    assert fam is FAMILIES[family]
    mods = attention_modules(bb)
    assert len(mods) == bb.config.num_hidden_layers and mods[0] is bb.model.layers[0].self_attn
    w, b = fam.query_weight(mods[0], 64)
    assert w is mods[0].q_proj.weight
    assert fam.rotary_embedding(bb) is bb.model.rotary_emb
    assert backbone_shape(bb.config) == dict(num_hidden_layers=4, hidden_size=64, num_attention_heads=4, head_dim=16)


def test_fused_and_unknown_query_projections():
    fused = nn.Module()
    fused.qkv_proj = nn.Linear(8, 24, bias=False)
    w, b = FAMILIES["phi3"].query_weight(fused, 8)
    assert torch.equal(w, fused.qkv_proj.weight[:8]) and b is None
    assert torch.equal(GENERIC.query_weight(fused, 8)[0], w)  # an unknown family with a fused projection
    with pytest.raises(ConfigError):
        GENERIC.query_weight(nn.Module(), 8)
