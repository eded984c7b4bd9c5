"""When to refuse: the one home of the refusal rule (features, classifier, policy, generation gate).

A logistic classifier reads the KB attention (how peaked the read is, how much goes to the
null token) and, by default, **key agreement**: the cosine between the question's sentence
embedding and the key embeddings of the few triples the attention ranked first. Attention
alone cannot tell a familiar name that is absent from an unfamiliar one that is present;
the encoder's check can, at a cost independent of the KB size (attention picks, the encoder
checks). The classifier is fitted after retrieval training on training KBs only; how the
feature sets compare is in ``docs/training.md#refusal``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch
from transformers import LogitsProcessor

from .results import GenerationResult, Retrieval, TripleScore

if TYPE_CHECKING:
    from ..attention.context import KBContext
    from ..encoding.manager import KBTokens
    from ..kb.triple import Triple
    from .config import KBLaMConfig


# Key agreement reads the cosines of this many attention-ranked triples.
AGREEMENT_TOP_K = 5
# Feature sets a classifier can be fitted on (its config names the one it reads):
#   "attention": per-layer best/null masses, overall best/null, log(kb_len)  (2L + 3)
#   "attention+agreement": the same + top-1 and best-of-k key cosines        (2L + 5)
#   "agreement": overall null mass, log(kb_len), best-of-k cosine             (3)
# "agreement" is the default (the comparison is in docs/training.md#refusal).
FEATURE_SETS = ("attention", "attention+agreement", "agreement")


def refusal_features(layer_probs: torch.Tensor, kb_len: int, key_cosines: torch.Tensor | None = None,
                     kind: str = "attention") -> torch.Tensor:
    """Refusal features of one feature set (see ``FEATURE_SETS``) from ``[B, L, N + 1]``
    retrieval distributions (last column: the null token).

    ``key_cosines`` ``[B, k]``: question-key cosines of the attention's top-k triples,
    best first (:func:`key_agreement`); needed by the sets that read agreement.
    """
    if kind not in FEATURE_SETS:
        raise ValueError(f"unknown refusal feature set {kind!r}; expected one of {FEATURE_SETS}")
    if kind != "attention" and key_cosines is None:
        raise ValueError(f"refusal feature set {kind!r} needs key_cosines")
    overall = layer_probs.mean(1)
    size = torch.full((layer_probs.shape[0], 1), math.log(max(kb_len, 1)), device=layer_probs.device)
    best_cos = None if key_cosines is None else key_cosines.max(dim=1, keepdim=True).values
    if kind == "agreement":
        parts = [overall[:, -1:], size, best_cos]
    else:
        best = overall[:, :-1].argmax(-1)
        rows = torch.arange(layer_probs.shape[0], device=layer_probs.device)
        parts = [layer_probs[rows, :, best], layer_probs[:, :, -1], overall[rows, best][:, None], overall[:, -1:],
                 size]
        if kind == "attention+agreement":
            parts += [key_cosines[:, :1], best_cos]
    return torch.cat([p.float() for p in parts], dim=1)


def top_triples(layer_probs: torch.Tensor, k: int = AGREEMENT_TOP_K) -> torch.Tensor:
    """``[B, min(k, N)]`` indices of the triples with the most attention (layer mean), best first."""
    overall = layer_probs.mean(1)[:, :-1]
    return overall.topk(min(k, overall.shape[1]), dim=-1).indices


def key_agreement(question_emb: torch.Tensor, key_emb: torch.Tensor) -> torch.Tensor:
    """Cosines ``[B, k]`` between questions ``[B, E]`` (or one text per candidate, ``[B, k, E]``)
    and their top triples' key embeddings ``[B, k, E]``."""
    q = torch.nn.functional.normalize(question_emb.float(), dim=-1)
    keys = torch.nn.functional.normalize(key_emb.float(), dim=-1)
    if q.dim() == 3:
        return (q * keys).sum(-1)
    return torch.einsum("be,bke->bk", q, keys)


@dataclass
class RefusalClassifier:
    """``refuse = sigmoid(w . features + b) > threshold`` (standardisation folded into ``w``, ``b``).

    ``features``: the feature set it reads (``FEATURE_SETS``); checkpoints from before
    key agreement have none and read ``"attention"``.
    """

    weight: list[float]
    bias: float
    threshold: float = 0.5
    features: str = "attention"

    def __post_init__(self):
        if self.features not in FEATURE_SETS:
            raise ValueError(f"refusal classifier: unknown feature set {self.features!r}; expected one of "
                             f"{FEATURE_SETS}")

    @property
    def reads_agreement(self) -> bool:
        return self.features != "attention"

    def probability(self, features: torch.Tensor) -> torch.Tensor:
        if features.shape[-1] != len(self.weight):
            raise ValueError(f"refusal classifier: {features.shape[-1]} features given, its weight has "
                             f"{len(self.weight)} (feature set {self.features!r})")
        w = torch.tensor(self.weight, dtype=torch.float32, device=features.device)
        return torch.sigmoid(features.float() @ w + self.bias)

    def refuse(self, features: torch.Tensor) -> torch.Tensor:
        return self.probability(features) > self.threshold

    def to_dict(self) -> dict:
        return {"weight": list(self.weight), "bias": float(self.bias), "threshold": float(self.threshold),
                "features": self.features}

    @classmethod
    def fit(cls, features: torch.Tensor, refuse: torch.Tensor, *, l2: float = 1e-3, threshold: float = 0.5,
            feature_set: str = "attention") -> "RefusalClassifier":
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
        return cls(weight=w_raw.tolist(), bias=b_raw, threshold=threshold, features=feature_set)


# (questions, triples, layer probs) -> [B, k] key agreement of the attention's top triples
AgreementFn = Callable[[Sequence[Any], Sequence["Triple"], torch.Tensor], torch.Tensor]


class RefusalPolicy:
    """The one home of the refusal decision: scores, threshold, "is this turn about the KB"
    and the refusal answer. Reads the config live (a refitted classifier takes effect at once).

    ``agreement``: the model's question-key agreement (:meth:`~.kblam_model.KBLaMModel.key_agreement`),
    computed only when the classifier reads it and the caller has not.
    """

    def __init__(self, config: "KBLaMConfig", agreement: AgreementFn):
        self.config, self.agreement = config, agreement

    @property
    def classifier(self) -> RefusalClassifier | None:
        """The config's :class:`RefusalClassifier`, or None (then the null/best ratio rule)."""
        return RefusalClassifier(**self.config.refusal_classifier) if self.config.refusal_classifier else None

    @property
    def threshold(self) -> float:
        """Refusal scores above this refuse: the classifier's threshold, else ``refusal_ratio``."""
        clf = self.classifier
        return float(clf.threshold) if clf is not None else float(self.config.refusal_ratio)

    def scores(self, probs: torch.Tensor, questions: Sequence[Any], triples: Sequence["Triple"],
               cosines: torch.Tensor | None = None) -> torch.Tensor:
        """``[B]`` refusal scores from ``[B, L, N + 1]`` layer probabilities: the classifier's
        probability, or without one the null/best mass ratio. ``cosines``: the key agreement
        of the attention's top triples, if already computed."""
        clf = self.classifier
        if clf is not None:
            if clf.reads_agreement and cosines is None:
                cosines = self.agreement(questions, triples, probs)
            if cosines is not None:
                cosines = cosines[:, :AGREEMENT_TOP_K]
            return clf.probability(refusal_features(probs, len(triples), cosines, clf.features))
        overall = probs.mean(1)
        return overall[:, -1] / overall[:, :-1].max(-1).values.clamp_min(1e-12)

    def refuses(self, score: torch.Tensor | float) -> bool:
        return bool(score > self.threshold)

    def is_kb_turn(self, found: Retrieval) -> bool:
        """Whether a turn the KB cannot answer is still about the KB (refuse) or not (greetings,
        tasks: the backbone answers them under ``non_kb_turns="answer"``): its best key agreement."""
        return bool(found.agreement) and max(found.agreement) >= self.config.kb_turn_agreement

    def backbone_answers(self, found: Retrieval) -> bool:
        """A turn the KB cannot answer goes to the backbone alone (not about the KB, and allowed)."""
        return self.config.non_kb_turns == "answer" and not self.is_kb_turn(found)

    def refusal(self, top: Sequence[TripleScore], null: float, tokens: "KBTokens", mode: str,
                streamer: Any) -> GenerationResult:
        """The refusal sentence, still reporting what was attended (it explains the refusal)."""
        res = GenerationResult(text=self.config.refusal, triples=tuple(s.triple for s in top),
                               scores=torch.tensor([s.score for s in top]), null_score=null,
                               kb_version=tokens.version, mode=mode)
        if streamer is not None:  # no tokens were generated: hand the text over directly
            if hasattr(streamer, "on_finalized_text"):
                streamer.on_finalized_text(self.config.refusal, stream_end=True)
            else:
                streamer.end()
        return res


class RefusalGate(LogitsProcessor):
    """Pure mode without value injection: decide on refusal once, right after the prefill.

    At its first call the scores-only records hold the prompt's retrieval distributions
    (what :meth:`~.kblam_model.KBLaMModel.retrieve_batch` computes), so the decision costs
    no second pass. A refusal forces the end-of-sequence token.
    """

    def __init__(self, policy: RefusalPolicy, layer_probs: Callable[["KBContext"], torch.Tensor], ctx: "KBContext",
                 messages, triples, eos: int | list[int] | None, streamer=None):
        self.policy, self.layer_probs, self.ctx = policy, layer_probs, ctx
        self.messages, self.triples, self.streamer = messages, triples, streamer
        self.refused: bool | None = None
        self.eos = eos if isinstance(eos, int) else (eos or [0])[0]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.refused is None:
            score = self.policy.scores(self.layer_probs(self.ctx), [self.messages], self.triples)[0]
            self.refused = self.policy.refuses(score)
            if self.refused and self.streamer is not None and hasattr(self.streamer, "on_finalized_text"):
                self.streamer.on_finalized_text(self.policy.config.refusal)
        if self.refused:
            scores = torch.full_like(scores, float("-inf"))
            scores[:, self.eos] = 0.0
        return scores
