"""A strong RAG baseline built from KBLaM's own pieces: what KBLaM is measured against.

A fair comparison changes one thing, the retriever, and keeps the rest:

* **retrieval**: exact cosine search (faiss ``IndexFlatIP`` over L2-normalised vectors)
  with the model's own sentence encoder (``model.encoder.embed``, batched), over either
  the triples' key texts (``"the {property} of {name}"``, what KBLaM's knowledge-token
  keys are made from) or their fact sentences (grounded mode's
  :func:`~kblam_integrations.model.grounding.fact_sentence`);
* **answer**: grounded mode's own answer step,
  :func:`~kblam_integrations.model.grounded_answer.answer_from_facts` (same prompt,
  answer prefix, stop and end strings), on the ``k`` retrieved facts;
* **refusal**: refuse when the best cosine is below ``min_cosine``, calibrated by
  :func:`calibrate_rag_refusal` on the same dev file and rule (maximum refusal F1) as
  KBLaM's refusal threshold.

``RAGEvalModel`` gives the baseline the interface :func:`~kblam_integrations.training.evaluate.evaluate`
drives, so both are evaluated on the same KBs with the same metrics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from ..kb.knowledge_base import KnowledgeBase
from ..kb.triple import Triple
from ..model.grounded_answer import answer_from_facts
from ..model.grounding import fact_sentence

INDEX_TEXTS = ("key", "fact")


def indexed_text(triple: Triple, kind: str = "key") -> str:
    """The text a triple is indexed by: its key text or its fact sentence."""
    if kind == "key":
        return triple.key_text
    if kind == "fact":
        return fact_sentence(triple)
    raise ValueError(f"index_text must be one of {INDEX_TEXTS}, got {kind!r}")


def _triples(kb: Any) -> tuple[Triple, ...]:
    """The triples of a KB-like input, in the order ``KBLaMModel.encode_kb`` sees them."""
    if isinstance(kb, KnowledgeBase):
        return tuple(kb.snapshot()[1])
    return tuple(KnowledgeBase(kb))


class FaissRAG:
    """Retrieve the ``k`` nearest triples by cosine, answer like grounded mode, refuse below ``min_cosine``."""

    def __init__(self, model, triples: Sequence[Triple], index, *, index_text: str = "key", k: int = 1,
                 min_cosine: float | None = None):
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        self.model, self.triples, self.index = model, tuple(triples), index
        self.index_text, self.k, self.min_cosine = index_text, k, min_cosine

    @classmethod
    def from_kb(cls, model, kb: KnowledgeBase | Iterable[Triple | dict | tuple], *, index_text: str = "key",
                k: int = 1, min_cosine: float | None = None) -> "FaissRAG":
        """Embed every triple's index text (batched) and build the exact inner-product index."""
        import faiss

        triples = _triples(kb)
        vectors = _embed(model, [indexed_text(t, index_text) for t in triples])
        index = faiss.IndexFlatIP(vectors.shape[1])
        if len(triples):
            index.add(vectors)
        return cls(model, triples, index, index_text=index_text, k=k, min_cosine=min_cosine)

    def __len__(self) -> int:
        return len(self.triples)

    def search(self, questions: Sequence[str], k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(cosines, indices)``, each ``[Q, k]``, best first (index -1: fewer than k triples)."""
        k = min(k or self.k, max(1, len(self.triples)))
        return self.index.search(_embed(self.model, list(questions)), k)

    def retrieve(self, question, k: int | None = None) -> list[tuple[Triple, float]]:
        """The ``k`` (default ``self.k``) nearest triples of a question (or chat messages) and their cosines."""
        if not self.triples:
            return []
        cos, idx = self.search([self.model.question_text(question)], k)
        return [(self.triples[i], float(c)) for c, i in zip(cos[0], idx[0]) if i >= 0]

    def refuses(self, hits: Sequence[tuple[Triple, float]]) -> bool:
        return self.min_cosine is not None and (not hits or hits[0][1] < self.min_cosine)

    def answer(self, question, *, k: int | None = None, max_new_tokens: int = 64, temperature: float = 0.0,
               stop: Sequence[str] | None = None, streamer: Any = None, seed: int | None = None):
        """Retrieve, then grounded mode's answer step on the retrieved facts (or the refusal sentence).

        Returns a :class:`~kblam_integrations.model.kblam_model.GenerationResult` with
        ``mode="rag"``, ``triples`` the retrieved facts and ``scores`` their cosines.
        """
        hits = self.retrieve(question, k)
        scores = torch.tensor([c for _, c in hits])
        if self.refuses(hits):
            from ..model.kblam_model import GenerationResult

            if streamer is not None:  # as grounded mode: no token generated, hand the text over
                if hasattr(streamer, "on_finalized_text"):
                    streamer.on_finalized_text(self.model.config.refusal, stream_end=True)
                else:
                    streamer.end()
            return GenerationResult(text=self.model.config.refusal, triples=tuple(t for t, _ in hits),
                                    scores=scores, mode="rag")
        res = answer_from_facts(self.model, question, [t for t, _ in hits], max_new_tokens=max_new_tokens,
                                temperature=temperature, stop=stop, streamer=streamer, seed=seed)
        res.scores, res.mode = scores, "rag"
        return res


def _embed(model, texts: list[str]) -> np.ndarray:
    """L2-normalised float32 sentence embeddings (the KB encoder's batched ``embed``)."""
    import faiss

    vectors = np.ascontiguousarray(model.encoder.embed(texts, show_progress=False).numpy(), dtype=np.float32)
    if len(vectors):
        faiss.normalize_L2(vectors)
    return vectors


class RAGEvalModel:
    """:class:`FaissRAG` behind the interface ``evaluate()`` drives (``encode_kb``, ``retrieve_batch``,
    ``generate``, ``refusal_threshold``), so it is scored on the KBs and with the rules KBLaM is.

    Refusal score: ``1 - best cosine`` (refuse above ``1 - min_cosine``).
    """

    def __init__(self, model, *, index_text: str = "key", k: int = 1, min_cosine: float | None = None):
        self.model, self.index_text, self.k, self.min_cosine = model, index_text, k, min_cosine

    def encode_kb(self, kb) -> FaissRAG:
        return FaissRAG.from_kb(self.model, kb, index_text=self.index_text, k=self.k, min_cosine=self.min_cosine)

    @property
    def refusal_threshold(self) -> float:
        return float("inf") if self.min_cosine is None else 1.0 - self.min_cosine

    def retrieve_batch(self, questions: Sequence[str], rag: FaissRAG, *, batch_size: int = 256,
                       return_refusal_scores: bool = False):
        """``[Q, N]`` cosines of every triple (the index's exact search, as a dense matrix), zero null scores."""
        n = len(rag)
        stored = rag.index.reconstruct_n(0, n) if n else np.zeros((0, 1), np.float32)
        cos = torch.from_numpy(_embed(self.model, [self.model.question_text(q) for q in questions]) @ stored.T)
        null = torch.zeros(len(questions))
        if not return_refusal_scores:
            return cos, null
        refusal = 1.0 - cos.max(dim=1).values if n else torch.full((len(questions),), float("inf"))
        return cos, null, refusal

    def generate(self, question, kb: FaissRAG | None = None, *, max_new_tokens: int = 64, mode: str | None = None,
                 **kwargs: Any):
        rag = kb if isinstance(kb, FaissRAG) else self.encode_kb(kb or [])
        return rag.answer(question, max_new_tokens=max_new_tokens, **kwargs)


def calibrate_rag_refusal(model, path: str | Path, *, index_text: str = "key", kb_size: int = 100,
                          seed: int = 0) -> tuple[float, dict]:
    """The ``min_cosine`` that maximises refusal F1 on an evaluation file (retrieval only).

    The same procedure as KBLaM's :func:`~kblam_integrations.training.evaluate.calibrate_refusal_ratio`:
    KBs built by ``evaluate()`` at ``kb_size``, one score per question, a grid of thresholds,
    the first with the best F1. Returns ``(min_cosine, {"refusal_precision", "refusal_recall", "f1"})``.
    """
    from ..training.evaluate import evaluate, load_eval_file

    triples, questions = load_eval_file(path)
    _, records = evaluate(RAGEvalModel(model, index_text=index_text), triples, questions, kb_size=kb_size,
                          seed=seed, generate=False, return_records=True)
    best = None
    for t in np.round(np.arange(0.05, 0.951, 0.005), 3):
        refused = [(1.0 - r["refusal_score"]) < t for r in records]
        tp = sum(f and not r["answerable"] for f, r in zip(refused, records))
        fp = sum(f and r["answerable"] for f, r in zip(refused, records))
        fn = sum(not f and not r["answerable"] for f, r in zip(refused, records))
        p = tp / (tp + fp) if tp + fp else 0.0
        rc = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * p * rc / (p + rc) if p + rc else 0.0
        if best is None or f1 > best[0]:
            best = (f1, float(t), {"refusal_precision": p, "refusal_recall": rc, "f1": f1})
    return best[1], best[2]
