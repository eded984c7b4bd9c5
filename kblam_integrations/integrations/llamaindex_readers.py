"""LlamaIndex documents for KBLaM: :class:`KBLaMReader` (text -> one ``Document`` per triple)
and :func:`kb_to_nodes` (a knowledge base as ``TextNode`` objects, e.g. for a vector index).

Going the other way, ``KnowledgeBase.from_documents(nodes)`` (or ``KBLaMReader().load_data(nodes)``)
takes any LlamaIndex ``Document``/``TextNode``: the reader's own output is read back as its
triple, other nodes are run through the spaCy extractor and keep their metadata.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from .._optional import require

require("llama_index.core", extra="llamaindex", feature="the LlamaIndex integration")

from llama_index.core.readers.base import BaseReader  # noqa: E402
from llama_index.core.schema import Document, TextNode  # noqa: E402

from ..kb.extraction import TripleExtractor  # noqa: E402
from ..kb.knowledge_base import KnowledgeBase, OnDuplicate  # noqa: E402
from ..kb.loaders import (  # noqa: E402
    DEFAULT_PATTERNS,
    PROVENANCE_KEYS,
    Source,
    _TripleSource,
    triple_metadata,
    triple_text,
)
from ..kb.triple import Triple  # noqa: E402

if TYPE_CHECKING:  # pragma: no cover
    from spacy.language import Language

__all__ = ["KBLaMReader", "kb_to_nodes", "triple_text_node"]


def triple_text_node(triple: Triple, **metadata: Any) -> TextNode:
    """``TextNode(<the fact as a sentence>, metadata=<triple + provenance + metadata>, id_=<triple id>)``.

    Every metadata key is excluded from the text embedding models and LLMs see: the
    sentence already states the fact.
    """
    md = {**{k: v for k, v in triple_metadata(triple).items() if v is not None}, **metadata}
    return TextNode(id_=triple.id, text=triple_text(triple), metadata=md,
                    excluded_llm_metadata_keys=list(md), excluded_embed_metadata_keys=list(md))


def kb_to_nodes(kb: KnowledgeBase | Iterable[Triple]) -> list[TextNode]:
    """One ``TextNode`` per triple of ``kb`` (a consistent snapshot of a live KB)."""
    triples = kb.snapshot()[1] if isinstance(kb, KnowledgeBase) else [KnowledgeBase._coerce(t, i)
                                                                      for i, t in enumerate(kb)]
    return [triple_text_node(t) for t in triples]


class KBLaMReader(BaseReader):
    """LlamaIndex reader: text files, directories, strings or nodes → one ``Document`` per triple.

    >>> docs = KBLaMReader().load_data(["notes/"], texts=["Ada Lovelace was born in London."])  # doctest: +SKIP

    Provenance keys (ids, source, sentence, span) are kept in ``metadata`` but excluded
    from the text that embedding models and LLMs see.
    """

    def __init__(self, extractor: TripleExtractor | None = None, *, model: str | None = None,
                 nlp: "Language | None" = None, batch_size: int = 32, show_progress: bool = False,
                 encoding: str = "utf-8", patterns: Sequence[str] = DEFAULT_PATTERNS):
        self._src = _TripleSource(extractor, model, nlp, batch_size, show_progress, encoding, patterns)

    @property
    def extractor(self) -> TripleExtractor:
        return self._src.extractor

    def lazy_load_data(self, sources: Source | Iterable[Source] | None = None, *,  # type: ignore[override]
                       texts: Iterable[str] | None = None) -> Iterator[Document]:
        for t in self._src.triples(sources, texts):
            yield Document(
                text=triple_text(t),
                metadata=triple_metadata(t),
                id_=f"{t.extra.get('doc_id')}:{t.id}",
                excluded_embed_metadata_keys=list(PROVENANCE_KEYS),
                excluded_llm_metadata_keys=list(PROVENANCE_KEYS),
            )

    def load_data(self, sources: Source | Iterable[Source] | None = None, *,  # type: ignore[override]
                  texts: Iterable[str] | None = None) -> list[Document]:
        return list(self.lazy_load_data(sources, texts=texts))

    def load_knowledge_base(self, sources: Source | Iterable[Source] | None = None, *,
                            texts: Iterable[str] | None = None, kb: KnowledgeBase | None = None,
                            on_duplicate: OnDuplicate = "ignore") -> KnowledgeBase:
        """Extract every source into ``kb`` (a new :class:`KnowledgeBase` by default)."""
        return self._src.knowledge_base(sources, texts, kb, on_duplicate)
