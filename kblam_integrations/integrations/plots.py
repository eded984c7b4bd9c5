"""Attention heatmaps from chain calls: what each answer attended to, read from its metadata.

``KBLaMLLM`` puts the most attended triples in ``AIMessage.response_metadata["kb_attention"]``
(LlamaIndex: ``response.additional_kwargs["kb_attention"]``, or a query ``Response``'s
``source_nodes``). :func:`plot_kb_attention` draws them for one or many answers — rows are
answers, columns the triples any of them attended to — without access to the model or the
``GenerationResult`` (for per-layer maps of one answer, see
:func:`kblam_integrations.model.interpret.plot_attention_heatmap`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import KBValidationError

__all__ = ["kb_attention_records", "plot_kb_attention"]


def kb_attention_records(response: Any) -> list[dict[str, Any]]:
    """The ``kb_attention`` records (``{name, property, value, triple_id, score}``) of one answer.

    Accepts an ``AIMessage`` (or chunk), its ``response_metadata``, a LlamaIndex
    ``ChatResponse``/``CompletionResponse`` (``additional_kwargs``), a query ``Response``
    (``source_nodes``) or the list of records itself.
    """
    metadata = getattr(response, "response_metadata", None)
    if isinstance(metadata, Mapping) and "kb_attention" in metadata:
        return list(metadata["kb_attention"])
    extra = getattr(response, "additional_kwargs", None)
    if isinstance(extra, Mapping) and "kb_attention" in extra:
        return list(extra["kb_attention"])
    nodes = getattr(response, "source_nodes", None)
    if nodes is not None:
        out = []
        for n in nodes:
            md = n.node.metadata
            if all(k in md for k in ("name", "property", "value")):
                out.append({"name": md["name"], "property": md["property"], "value": md["value"],
                            "triple_id": md.get("triple_id"), "score": float(n.score or 0.0)})
        return out
    if isinstance(response, Mapping) and "kb_attention" in response:
        return list(response["kb_attention"])
    if isinstance(response, Sequence) and not isinstance(response, (str, bytes)) and all(
            isinstance(r, Mapping) and "score" in r for r in response):
        return [dict(r) for r in response]
    raise KBValidationError(f"no kb_attention in {type(response).__name__}: pass an AIMessage, its response_metadata, "
                            "a LlamaIndex response or a list of kb_attention records", field="kb_attention")


def _is_single(responses: Any) -> bool:
    if isinstance(responses, (Mapping, str, bytes)) or not isinstance(responses, Sequence):
        return True
    return bool(responses) and all(isinstance(r, Mapping) and "score" in r for r in responses)


def plot_kb_attention(responses: Any, path: str | os.PathLike | None = None, *, labels: Sequence[str] | None = None,
                      max_triples: int = 20, title: str | None = None):
    """Heatmap of KB attention scores: one row per answer, one column per attended triple.

    ``responses``: one answer or a list of them (see :func:`kb_attention_records`), e.g.
    ``chain.batch(questions)`` run through ``KBLaMLLM`` (with a parser after it, keep the
    messages: ``chain.with_listeners`` or call the LLM part separately). ``labels`` name the
    rows (default ``answer 1``, ...). Columns are ordered by total score; at most
    ``max_triples``. Saved to ``path`` (written atomically) if given; returns the Figure.
    """
    from .._optional import require

    require("matplotlib", extra="plots", feature="attention plots")
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np

    items = [responses] if _is_single(responses) else list(responses)
    rows = [kb_attention_records(r) for r in items]
    if labels is not None and len(labels) != len(rows):
        raise KBValidationError(f"{len(labels)} labels for {len(rows)} answers", field="labels")
    totals: dict[Any, float] = {}
    names: dict[Any, str] = {}
    for records in rows:
        for r in records:
            key = r.get("triple_id") or (r["name"], r["property"], r["value"])
            totals[key] = totals.get(key, 0.0) + float(r["score"])
            names[key] = f"{r['name']} · {r['property']} · {r['value']}"
    cols = sorted(totals, key=lambda k: -totals[k])[:max(1, max_triples)]
    index = {k: j for j, k in enumerate(cols)}
    mat = np.zeros((len(rows), max(1, len(cols))))
    for i, records in enumerate(rows):
        for r in records:
            j = index.get(r.get("triple_id") or (r["name"], r["property"], r["value"]))
            if j is not None:
                mat[i, j] = float(r["score"])
    fig, ax = plt.subplots(figsize=(max(6, 0.55 * len(cols) + 3), max(2.5, 0.45 * len(rows) + 1.8)))
    im = ax.imshow(mat, aspect="auto", cmap="viridis", vmin=0.0)
    ax.set_yticks(range(len(rows)), list(labels) if labels is not None else [f"answer {i + 1}" for i in range(len(rows))])
    ax.set_xticks(range(len(cols)), [names[k][:48] for k in cols], rotation=60, ha="right", fontsize=8)
    ax.set_title(title or "KB attention per answer")
    fig.colorbar(im, ax=ax, label="attention score")
    fig.tight_layout()
    if path is not None:
        _save_atomically(fig, Path(path))
    plt.close(fig)
    return fig


def _save_atomically(fig: Any, path: Path) -> None:
    from ..kb.atomic_files import atomic_write_with

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_with(path, lambda tmp: fig.savefig(tmp, dpi=120, format=path.suffix.lstrip(".") or "png"))
