"""The trained part of KBLaM's encoder: linear maps from sentence embeddings to knowledge tokens.

One knowledge token per triple and KB layer: ``key = LayerNorm(W_k e_key)[j]`` (no affine
parameters, as in the paper) and ``value = (W_v e_value)[j]``. An optional learned
*null* token (one key/value per layer) gives unanswerable questions somewhere to put
their attention; it joins the KB only when the KB is non-empty.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class KnowledgeAdapters(nn.Module):
    def __init__(self, encoder_dim: int, kb_dim: int, num_kb_layers: int, use_null_token: bool = True):
        super().__init__()
        self.encoder_dim, self.kb_dim, self.num_kb_layers = encoder_dim, kb_dim, num_kb_layers
        self.key = nn.Linear(encoder_dim, kb_dim * num_kb_layers, bias=False)
        self.value = nn.Linear(encoder_dim, kb_dim * num_kb_layers, bias=False)
        self.use_null_token = use_null_token
        if use_null_token:
            self.null_key = nn.Parameter(torch.randn(num_kb_layers, kb_dim) * 0.02)
            self.null_value = nn.Parameter(torch.zeros(num_kb_layers, kb_dim))

    def keys(self, key_embeddings: torch.Tensor) -> torch.Tensor:
        """``[N, encoder_dim]`` -> ``[N, num_kb_layers, kb_dim]``."""
        k = self.key(key_embeddings.to(self.key.weight.dtype)).view(-1, self.num_kb_layers, self.kb_dim)
        return F.layer_norm(k, (self.kb_dim,))

    def values(self, value_embeddings: torch.Tensor) -> torch.Tensor:
        return self.value(value_embeddings.to(self.value.weight.dtype)).view(-1, self.num_kb_layers, self.kb_dim)

    def forward(self, key_embeddings: torch.Tensor, value_embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.keys(key_embeddings), self.values(value_embeddings)

    def null_token(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``([1, L, kb_dim], [1, L, kb_dim])`` or None; the key is normalised like the others."""
        if not self.use_null_token:
            return None
        return F.layer_norm(self.null_key, (self.kb_dim,)).unsqueeze(0), self.null_value.unsqueeze(0)
