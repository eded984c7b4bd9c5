"""Framework integrations: LangChain (:class:`KBLaMLLM`, :class:`KBLaMRetriever`, :class:`KBLaMTextLoader`)
and LlamaIndex (:class:`KBLaMLlamaIndexLLM`, :class:`KBLaMQueryEngine`, :class:`KBLaMLlamaIndexRetriever`,
:class:`KBLaMReader`), plus graph interop and attention plots.

Imported lazily so that using one framework never imports the other.
"""

from __future__ import annotations

from .._optional import lazy_getattr as _lazy_getattr

_LAZY = {
    "KBLaMLLM": "kblam_integrations.integrations.langchain",
    "KBLaMSentenceEmbeddings": "kblam_integrations.integrations.langchain",
    "KBLaMLlamaIndexLLM": "kblam_integrations.integrations.llamaindex",
    "KBLaMQueryEngine": "kblam_integrations.integrations.llamaindex",
    "KBLaMRetriever": "kblam_integrations.integrations.langchain_retriever",
    "KBLaMTextLoader": "kblam_integrations.integrations.langchain_loaders",
    "kb_to_documents": "kblam_integrations.integrations.langchain_loaders",
    "KBLaMLlamaIndexRetriever": "kblam_integrations.integrations.llamaindex_retriever",
    "KBLaMReader": "kblam_integrations.integrations.llamaindex_readers",
    "kb_to_nodes": "kblam_integrations.integrations.llamaindex_readers",
    "KnowledgeTriple": "kblam_integrations.integrations.graphs",
    "kb_to_knowledge_triples": "kblam_integrations.integrations.graphs",
    "kb_to_entity_graph": "kblam_integrations.integrations.graphs",
    "kb_from_entity_graph": "kblam_integrations.integrations.graphs",
    "kb_to_triplets": "kblam_integrations.integrations.graphs",
    "kb_to_property_graph": "kblam_integrations.integrations.graphs",
    "kb_from_property_graph": "kblam_integrations.integrations.graphs",
    "plot_kb_attention": "kblam_integrations.integrations.plots",
    "KBSource": "kblam_integrations.integrations.kb_source",
    "resolve_kb": "kblam_integrations.integrations.kb_source",
    "ModelSpec": "kblam_integrations.integrations.model_cache",
    "get_model": "kblam_integrations.integrations.model_cache",
    "clear_model_cache": "kblam_integrations.integrations.model_cache",
}


__getattr__ = _lazy_getattr(__name__, _LAZY)


__all__ = list(_LAZY)
