"""What retrieval and generation return: plain records, shared by every model module."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import torch

from ..kb.triple import Triple


@dataclass
class TripleScore:
    """How much attention a triple received (mean KB attention mass over the retrieval layers)."""

    triple: Triple
    score: float


class Retrieval(NamedTuple):
    """One scores-only pass: the selected triples, the null token's score, the refusal decision and
    each selected triple's question-key agreement."""

    top: list[TripleScore]
    null: float
    refuse: bool
    agreement: list[float]
    candidates: tuple[Triple, ...] = ()  # the attention's top candidates, attention order
    scores: torch.Tensor | None = None  # [N] every triple's retrieval score (the KB's order)
    layer_scores: dict[int, torch.Tensor] | None = None  # per KB layer, [N (+1 null)]


@dataclass
class GenerationResult:
    """Output of :meth:`~.kblam_model.KBLaMModel.generate`."""

    text: str
    triples: tuple[Triple, ...] = ()
    scores: torch.Tensor | None = None  # [N] per-triple retrieval score
    layer_scores: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> [N]
    null_score: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    kb_version: int | None = None
    mode: str = "kblam"

    def top_k(self, k: int = 5) -> list[TripleScore]:
        """The k triples that received the most attention, best first."""
        if self.scores is None or not self.triples:
            return []
        k = min(k, len(self.triples))
        vals, idx = torch.topk(self.scores, k)
        return [TripleScore(self.triples[i], float(v)) for v, i in zip(vals.tolist(), idx.tolist())]
