"""When to refuse: a logistic classifier over the KB attention of every retrieval layer.

Comparing the null token's mass with the best triple's (one ratio) discards what the
layers disagree on: on held-out training pools a ratio rule reached precision 0.88 at
recall 0.59, while a logistic model over per-layer masses reached 0.92 / 0.86. The
classifier is fitted once after retrieval training (on sampled training KBs, never on
evaluation data) and stored in the model config as a handful of numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def refusal_features(layer_probs: torch.Tensor, kb_len: int) -> torch.Tensor:
    """``[B, 2L + 3]`` from ``[B, L, N + 1]`` retrieval distributions (last column: null token).

    Per layer: the mass on the overall best triple and on the null token; then the overall
    best and null masses and ``log(kb_len)`` (masses shrink as the KB grows).
    """
    overall = layer_probs.mean(1)
    best = overall[:, :-1].argmax(-1)
    rows = torch.arange(layer_probs.shape[0], device=layer_probs.device)
    per_best = layer_probs[rows, :, best]
    per_null = layer_probs[:, :, -1]
    size = torch.full((layer_probs.shape[0], 1), math.log(max(kb_len, 1)), device=layer_probs.device)
    return torch.cat([per_best, per_null, overall[rows, best][:, None], overall[:, -1:], size], dim=1).float()


@dataclass
class RefusalClassifier:
    """``refuse = sigmoid(w . features + b) > threshold`` (standardisation folded into ``w``, ``b``)."""

    weight: list[float]
    bias: float
    threshold: float = 0.5

    def probability(self, features: torch.Tensor) -> torch.Tensor:
        w = torch.tensor(self.weight, dtype=torch.float32, device=features.device)
        return torch.sigmoid(features.float() @ w + self.bias)

    def refuse(self, features: torch.Tensor) -> torch.Tensor:
        return self.probability(features) > self.threshold

    def to_dict(self) -> dict:
        return {"weight": list(self.weight), "bias": float(self.bias), "threshold": float(self.threshold)}

    @classmethod
    def fit(cls, features: torch.Tensor, refuse: torch.Tensor, *, l2: float = 1e-3, threshold: float = 0.5
            ) -> "RefusalClassifier":
        """L2-regularised logistic regression (L-BFGS) on standardised features."""
        x = features.float()
        y = refuse.float()
        mu, sd = x.mean(0), x.std(0).clamp_min(1e-6)
        z = (x - mu) / sd
        w = torch.zeros(x.shape[1], requires_grad=True)
        b = torch.zeros(1, requires_grad=True)
        opt = torch.optim.LBFGS([w, b], max_iter=200, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(z @ w + b, y) + l2 * w.pow(2).sum()
            loss.backward()
            return loss

        with torch.enable_grad():
            opt.step(closure)
        w_raw = (w.detach() / sd)
        b_raw = float(b.detach() - (w.detach() * mu / sd).sum())
        return cls(weight=w_raw.tolist(), bias=b_raw, threshold=threshold)
