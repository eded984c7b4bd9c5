"""LangChain retriever over KB attention: :class:`KBLaMRetriever`.

.. code-block:: python

    from kblam_integrations.integrations.langchain_retriever import KBLaMRetriever

    retriever = KBLaMRetriever(kb=kb, k=3)
    retriever.invoke("Who founded Veltrano Dynamics?")
    # [Document(page_content="The founder of Veltrano Dynamics is Marisol Okonkwo.",
    #           metadata={"name": ..., "property": ..., "value": ..., "score": 0.83, "kb_version": 1, ...})]

The ranking is the frozen backbone's attention over the knowledge tokens (one prefill,
no generation), so it composes with any other retriever: in an ``EnsembleRetriever``,
behind a ``MultiQueryRetriever``, or next to a vector store.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .._optional import require

require("langchain_core", extra="langchain", feature="the LangChain integration")

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun  # noqa: E402
from langchain_core.documents import Document  # noqa: E402
from langchain_core.retrievers import BaseRetriever  # noqa: E402
from pydantic import Field, PrivateAttr, ValidationError  # noqa: E402

from ..errors import ConfigError  # noqa: E402
from .generation_settings import normalise_settings  # noqa: E402
from .runner import KBLaMRunner  # noqa: E402
from .retrieval import attended_triples  # noqa: E402

__all__ = ["KBLaMRetriever"]


class KBLaMRetriever(BaseRetriever):
    """A LangChain retriever that returns the triples a question attends to most, as ``Document`` objects.

    ``page_content`` is the fact as a sentence (the same sentence grounded mode puts in its
    prompt); ``metadata`` holds ``name``, ``property``, ``value``, ``triple_id``, ``score``
    (KB attention mass), ``kb_version``, ``null_score`` and the triple's provenance
    (``source``, ``sentence``, ...). The KB is live, as for ``KBLaMLLM``; the model is
    loaded at the first call and shared with every other KBLaM object of the same weights.
    """

    kb: Any = Field(default=None, exclude=True, repr=False,
                    description="The knowledge base: anything KBLaMLLM(kb=...) accepts.")
    k: int = Field(default=4, ge=1, description="How many attended triples to return, best first.")
    model_path: str | None = Field(default=None, description="A trained KBLaM checkpoint (None: the shipped one).")
    backbone: str | None = Field(default=None, description="Backbone override (path, .gguf or cached HF id).")
    encoder: str | None = Field(default=None, description="Sentence-encoder override.")
    kblam_model: Any = Field(default=None, exclude=True, repr=False, description="An already loaded KBLaMModel.")

    _runner: KBLaMRunner = PrivateAttr()

    def __init__(self, kb: Any = None, **kwargs: Any):
        runner = kwargs.pop("_runner", None)
        normalise_settings(type(self), kwargs)
        try:
            super().__init__(kb=kb, **kwargs)
        except ValidationError as exc:
            raise ConfigError(f"invalid KBLaMRetriever settings: {exc}") from exc
        self._runner = runner or KBLaMRunner(kb, model_path=self.model_path, backbone=self.backbone,
                                             encoder=self.encoder, kblam_model=self.kblam_model)

    @classmethod
    def from_llm(cls, llm: Any, *, k: int = 4, **kwargs: Any) -> "KBLaMRetriever":
        """A retriever over ``llm``'s KB and model (a ``KBLaMLLM``): no second copy of the knowledge tokens."""
        runner = getattr(llm, "_runner", None)
        if not isinstance(runner, KBLaMRunner):
            raise ConfigError(f"llm must be a KBLaMLLM, got {type(llm).__name__}")
        return cls(kb=llm.kb, k=k, _runner=runner, **kwargs)

    @property
    def knowledge_base(self):
        """The live ``KnowledgeBase`` (None without one)."""
        return self._runner.knowledge_base

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [Document(page_content=a.text, metadata=a.metadata, id=a.triple.id)
                for a in attended_triples(self._runner, query, self.k)]

    async def _aget_relevant_documents(self, query: str, *,
                                       run_manager: AsyncCallbackManagerForRetrieverRun) -> list[Document]:
        # one prefill on a shared, locked model: run it off the event loop
        return await asyncio.to_thread(self._get_relevant_documents, query, run_manager=run_manager.get_sync())
