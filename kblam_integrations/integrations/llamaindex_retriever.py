"""LlamaIndex retriever over KB attention: :class:`KBLaMLlamaIndexRetriever`.

.. code-block:: python

    from llama_index.core.query_engine import RetrieverQueryEngine
    from kblam_integrations.integrations.llamaindex_retriever import KBLaMLlamaIndexRetriever

    retriever = KBLaMLlamaIndexRetriever(kb=kb, similarity_top_k=3)
    engine = RetrieverQueryEngine.from_args(retriever, llm=my_llm)

The ranking is the frozen backbone's attention over the knowledge tokens (one prefill,
no generation), so it fits wherever LlamaIndex takes a retriever: ``RetrieverQueryEngine``,
``QueryFusionRetriever``, routers.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .._optional import require

require("llama_index.core", extra="llamaindex", feature="the LlamaIndex integration")

from llama_index.core.base.base_retriever import BaseRetriever  # noqa: E402
from llama_index.core.callbacks import CallbackManager  # noqa: E402
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode  # noqa: E402

from ..errors import ConfigError  # noqa: E402
from .runner import KBLaMRunner  # noqa: E402
from .retrieval import attended_triples  # noqa: E402

__all__ = ["KBLaMLlamaIndexRetriever"]


class KBLaMLlamaIndexRetriever(BaseRetriever):
    """A LlamaIndex retriever: the triples a question attends to most, as ``NodeWithScore(TextNode)``.

    Args:
        kb: the knowledge base (anything ``KBLaMLlamaIndexLLM(kb=...)`` accepts).
        similarity_top_k: how many attended triples to return, best first.
        llm: a ``KBLaMLlamaIndexLLM`` whose KB and model to share (then give no ``kb``/model settings).
        model_path / backbone / encoder / kblam_model: where the model comes from (as for the LLM).

    Node text is the fact as a sentence; ``score`` is the KB attention mass; ``metadata``
    holds ``name``, ``property``, ``value``, ``triple_id``, ``score``, ``kb_version``,
    ``null_score`` and the triple's provenance, all excluded from what LLMs and embedders see.
    """

    def __init__(self, kb: Any = None, *, similarity_top_k: int = 4, llm: Any = None, model_path: str | None = None,
                 backbone: str | None = None, encoder: str | None = None, kblam_model: Any = None,
                 callback_manager: CallbackManager | None = None, verbose: bool = False):
        if isinstance(similarity_top_k, bool) or not isinstance(similarity_top_k, int) or similarity_top_k < 1:
            raise ConfigError(f"similarity_top_k must be a positive integer, got {similarity_top_k!r}")
        if llm is not None:
            runner = getattr(llm, "_runner", None)
            if not isinstance(runner, KBLaMRunner):
                raise ConfigError(f"llm must be a KBLaMLlamaIndexLLM, got {type(llm).__name__}")
            if kb is not None or any(v is not None for v in (model_path, backbone, encoder, kblam_model)):
                raise ConfigError("pass either llm= or kb=/model settings to KBLaMLlamaIndexRetriever, not both")
        else:
            runner = KBLaMRunner(kb, model_path=model_path, backbone=backbone, encoder=encoder,
                                 kblam_model=kblam_model)
        self._runner = runner
        self.similarity_top_k = similarity_top_k
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    @property
    def knowledge_base(self):
        """The live ``KnowledgeBase`` (None without one)."""
        return self._runner.knowledge_base

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        nodes = []
        for a in attended_triples(self._runner, query_bundle.query_str, self.similarity_top_k):
            node = TextNode(id_=a.triple.id, text=a.text, metadata=a.metadata,
                            excluded_llm_metadata_keys=list(a.metadata),
                            excluded_embed_metadata_keys=list(a.metadata))
            nodes.append(NodeWithScore(node=node, score=a.score))
        return nodes

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        # one prefill on a shared, locked model: run it off the event loop
        return await asyncio.to_thread(self._retrieve, query_bundle)
