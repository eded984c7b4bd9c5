"""What both retrievers share: one KB-attention pass turned into plain records.

Framework-free: the LangChain and LlamaIndex retrievers wrap :func:`attended_triples`
into ``Document`` / ``NodeWithScore`` objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import KBValidationError
from ..kb.triple import Triple
from ..model.grounding import fact_sentence
from .runner import KBLaMRunner

__all__ = ["AttendedTriple", "attended_triples", "triple_record"]

_SCALARS = (str, int, float, bool)


@dataclass(frozen=True)
class AttendedTriple:
    """One retrieved triple: the fact as a sentence, its metadata and its attention score."""

    triple: Triple
    text: str
    metadata: dict[str, Any]
    score: float


def triple_record(triple: Triple, score: float, kb_version: int | None, null_score: float) -> dict[str, Any]:
    """Retriever metadata: ``name``, ``property``, ``value``, ``triple_id``, ``score``, ``kb_version``,
    ``null_score``, then the triple's scalar ``extra`` (``source``, ``sentence``, ...)."""
    md: dict[str, Any] = {"name": triple.name, "property": triple.property, "value": triple.value,
                          "triple_id": triple.id, "score": float(score), "kb_version": kb_version,
                          "null_score": float(null_score)}
    for key, value in triple.extra.items():
        if key not in md and isinstance(value, _SCALARS):
            md[key] = value
    return md


def attended_triples(runner: KBLaMRunner, query: Any, k: int) -> list[AttendedTriple]:
    """The ``k`` triples ``query`` attends to most (one prefill, no generation), best first.

    Uses the runner's live KB: each call sees the KB as it is when the call starts.
    """
    if not isinstance(query, str):
        raise KBValidationError(f"a retriever query must be a string, got {type(query).__name__}", field="query")
    if not query.strip():
        raise KBValidationError("a retriever query must not be empty", field="query")
    top, null, tokens = runner.retrieve(query, k)
    version = tokens.version if tokens is not None else None
    return [AttendedTriple(s.triple, fact_sentence(s.triple), triple_record(s.triple, s.score, version, null),
                           float(s.score)) for s in top]
