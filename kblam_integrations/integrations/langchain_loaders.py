"""LangChain documents for KBLaM: :class:`KBLaMTextLoader` (text -> one ``Document`` per triple)
and :func:`kb_to_documents` (a knowledge base as ``Document`` objects, e.g. for a vector store).

Going the other way, ``KnowledgeBase.from_documents(docs)`` (or ``KBLaMTextLoader(docs)``) takes
any LangChain ``Document``: the loader's own output is read back as its triple, other documents
are run through the spaCy extractor and keep their metadata (``source``, ``page``, ...).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Iterator, Sequence

from .._optional import require

require("langchain_core", extra="langchain", feature="the LangChain integration")

from langchain_core.document_loaders import BaseLoader  # noqa: E402
from langchain_core.documents import Document  # noqa: E402

from ..kb.extraction import TripleExtractor  # noqa: E402
from ..kb.knowledge_base import KnowledgeBase, OnDuplicate  # noqa: E402
from ..kb.loaders import DEFAULT_PATTERNS, Source, _TripleSource, triple_metadata, triple_text  # noqa: E402
from ..kb.triple import Triple  # noqa: E402

if TYPE_CHECKING:  # pragma: no cover
    from spacy.language import Language

__all__ = ["KBLaMTextLoader", "kb_to_documents", "triple_document"]


def triple_document(triple: Triple) -> Document:
    """``Document(page_content=<the fact as a sentence>, metadata=<triple + provenance>, id=<triple id>)``."""
    return Document(page_content=triple_text(triple), metadata=triple_metadata(triple), id=triple.id)


def kb_to_documents(kb: KnowledgeBase | Iterable[Triple]) -> list[Document]:
    """One ``Document`` per triple of ``kb`` (a consistent snapshot of a live KB)."""
    triples = kb.snapshot()[1] if isinstance(kb, KnowledgeBase) else [KnowledgeBase._coerce(t, i)
                                                                      for i, t in enumerate(kb)]
    return [triple_document(t) for t in triples]


class KBLaMTextLoader(BaseLoader):
    """LangChain loader: text files, directories, strings or ``Document`` objects → one ``Document`` per triple.

    >>> loader = KBLaMTextLoader(["notes/", "Ada Lovelace was born in London."])  # doctest: +SKIP
    >>> docs = loader.load()
    >>> kb = loader.load_knowledge_base()

    A ``str`` that is not an existing path is extracted as text (see
    :mod:`kblam_integrations.kb.loaders`); ``texts=`` passes raw strings explicitly.
    """

    def __init__(self, sources: Source | Iterable[Source] | None = None, extractor: TripleExtractor | None = None, *,
                 texts: Iterable[str] | None = None, model: str | None = None, nlp: "Language | None" = None,
                 batch_size: int = 32, show_progress: bool = False, encoding: str = "utf-8",
                 patterns: Sequence[str] = DEFAULT_PATTERNS):
        self.sources = sources
        self.texts = list(texts) if texts is not None else None
        self._src = _TripleSource(extractor, model, nlp, batch_size, show_progress, encoding, patterns)

    @property
    def extractor(self) -> TripleExtractor:
        return self._src.extractor

    def lazy_triples(self) -> Iterator[Triple]:
        """The extracted triples (``extra`` holds doc_id/source/sentence/char span)."""
        return self._src.triples(self.sources, self.texts)

    def lazy_load(self) -> Iterator[Document]:
        for t in self.lazy_triples():
            yield Document(page_content=triple_text(t), metadata=triple_metadata(t),
                           id=f"{t.extra.get('doc_id')}:{t.id}")

    def load_knowledge_base(self, kb: KnowledgeBase | None = None, *,
                            on_duplicate: OnDuplicate = "ignore") -> KnowledgeBase:
        """Extract every source into ``kb`` (a new :class:`KnowledgeBase` by default)."""
        return self._src.knowledge_base(self.sources, self.texts, kb, on_duplicate)
