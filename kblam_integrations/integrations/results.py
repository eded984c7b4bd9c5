"""What a generation reports back to the frameworks: the attended triples and the KB it saw."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from ..encoding.manager import KBTokens
    from ..model.kblam_model import GenerationResult

__all__ = ["attention_records", "result_metadata"]


def attention_records(result: "GenerationResult", k: int) -> list[dict[str, Any]]:
    """The ``k`` most attended triples as ``{name, property, value, triple_id, score}``, best first."""
    if k <= 0:
        return []
    return [
        {"name": s.triple.name, "property": s.triple.property, "value": s.triple.value,
         "triple_id": s.triple.id, "score": float(s.score)}
        for s in result.top_k(k)
    ]


def result_metadata(model_name: str, result: "GenerationResult", tokens: "KBTokens | None",
                    top_k: int) -> dict[str, Any]:
    """The metadata both wrappers attach to an answer (each adds its framework's own keys)."""
    return {
        "model_name": model_name,
        "mode": result.mode,
        "kb_version": result.kb_version,
        "kb_size": len(tokens) if tokens is not None else 0,
        "kb_attention": attention_records(result, top_k),
        "null_score": float(result.null_score),
    }
