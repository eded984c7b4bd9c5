"""A triple as a framework document and back, duck-typed: no framework is imported.

LangChain and LlamaIndex documents carry a fact as text (its sentence) plus metadata
(``name``/``property``/``value`` and provenance). These functions write that shape and
read it back, so :class:`~.knowledge_base.KnowledgeBase` accepts documents without
depending on the loaders.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .sentences import fact_sentence
from .triple import Triple

__all__ = ["PROVENANCE_KEYS", "SCALAR_TYPES", "document_parts", "document_triple", "triple_metadata", "triple_text"]

#: Metadata keys that record where a triple came from (kept out of embeddings and prompts).
PROVENANCE_KEYS = ("triple_id", "doc_id", "source", "sentence", "char_start", "char_end")
#: Value types a document's metadata may hold (frameworks keep only scalars).
SCALAR_TYPES = (str, int, float, bool)


def triple_text(triple: Triple) -> str:
    """The fact as a sentence ("Ada Lovelace was born in London."), as grounded mode writes it."""
    return fact_sentence(triple)


def triple_metadata(triple: Triple) -> dict[str, Any]:
    """``name``/``property``/``value``/``triple_id`` and the provenance keys, then other scalar extras."""
    extra = triple.extra
    out: dict[str, Any] = {
        "name": triple.name,
        "property": triple.property,
        "value": triple.value,
        "triple_id": triple.id,
        "doc_id": extra.get("doc_id"),
        "source": extra.get("source"),
        "sentence": extra.get("sentence"),
        "char_start": extra.get("char_start"),
        "char_end": extra.get("char_end"),
    }
    for key, value in extra.items():
        if key not in out and isinstance(value, SCALAR_TYPES):
            out[key] = value
    return out


def document_parts(obj: Any) -> tuple[str, Mapping[str, Any], str | None] | None:
    """``(text, metadata, id)`` of a framework document, duck-typed; None for anything else.

    LangChain ``Document`` (``page_content``, ``metadata``, ``id``) and LlamaIndex
    ``Document``/``TextNode`` (``text``, ``metadata``, ``id_``) qualify, as does any object
    shaped like them; nothing is imported from either framework.
    """
    if isinstance(obj, (str, bytes, os.PathLike, Mapping, tuple, Triple)):
        return None
    metadata = getattr(obj, "metadata", None)
    if not isinstance(metadata, Mapping):
        return None
    text = getattr(obj, "page_content", None)
    if text is None:
        text = getattr(obj, "text", None)
    if not isinstance(text, str):
        return None
    doc_id = getattr(obj, "id", None)
    if not isinstance(doc_id, str):
        doc_id = getattr(obj, "id_", None)
    return text, metadata, doc_id if isinstance(doc_id, str) and doc_id else None


def document_triple(metadata: Mapping[str, Any]) -> Triple | None:
    """The triple a document carries in its metadata (the loaders' output), else None."""
    if not all(isinstance(metadata.get(k), str) for k in ("name", "property", "value")):
        return None
    extra = {k: v for k, v in metadata.items()
             if k not in ("name", "property", "value", "id", "triple_id", "score", "kb_version") and v is not None}
    return Triple(metadata["name"], metadata["property"], metadata["value"], extra)
