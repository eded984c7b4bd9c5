"""LlamaIndex integration: :class:`KBLaMLlamaIndexLLM` (an ``LLM``) and :class:`KBLaMQueryEngine`.

.. code-block:: python

    from llama_index.core import Settings
    from kblam_integrations import KnowledgeBase
    from kblam_integrations.integrations.llamaindex import KBLaMLlamaIndexLLM, KBLaMQueryEngine

    kb = KnowledgeBase([("Veltrano Dynamics", "founder", "Marisol Okonkwo")])
    Settings.llm = KBLaMLlamaIndexLLM(kb=kb)          # any LlamaIndex component can use it
    engine = KBLaMQueryEngine(kb=kb)                  # or: KBLaMQueryEngine.from_documents(["notes/"])
    response = engine.query("Who founded Veltrano Dynamics?")
    response.source_nodes                             # the attended triples, with scores

Both default to ``mode="grounded"`` (KB attention picks the triple, its sentence goes in the
prompt; ``mode="kblam"`` for knowledge tokens only). There is no index: the triples are
knowledge tokens the frozen backbone attends to, and the source nodes are the triples that
received the most attention (``KBLaMLlamaIndexRetriever`` exposes that ranking as a retriever).
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterator, Sequence

from .._optional import require

require("llama_index.core", extra="llamaindex", feature="the LlamaIndex integration")

from llama_index.core.base.base_query_engine import BaseQueryEngine
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
    TextBlock,
)
from llama_index.core.base.response.schema import Response
from llama_index.core.callbacks import CallbackManager
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.custom import CustomLLM
from llama_index.core.schema import BaseNode, NodeWithScore, QueryBundle, TextNode

from ..errors import ConfigError, KBValidationError
from ..kb.knowledge_base import KnowledgeBase
from ..kb.triple import Triple
from ..model.grounding import fact_sentence
from .kb_source import ENCODED_KB_SUFFIX, KB_FILE_SUFFIXES, resolve_kb
from .generation_settings import GenerationSettings, check_generation_options
from .results import result_metadata
from .serial_calls import generate_locked
from .streaming import stream_locked

logger = logging.getLogger(__name__)

__all__ = ["KBLaMLlamaIndexLLM", "KBLaMQueryEngine", "chat_messages_to_dicts", "triple_node"]

_CALL_OPTIONS = ("max_new_tokens", "max_tokens", "temperature", "mode", "grounded_k", "top_k_kb",
                 "top_k_attention", "seed", "stop")
_ROLES = {MessageRole.SYSTEM: "system", MessageRole.DEVELOPER: "system", MessageRole.USER: "user",
          MessageRole.ASSISTANT: "assistant", MessageRole.MODEL: "assistant", MessageRole.CHATBOT: "assistant"}
_DONE = object()


def chat_messages_to_dicts(messages: Sequence[ChatMessage]) -> list[dict[str, str]]:
    """LlamaIndex chat messages -> ``[{"role", "content"}]``; text blocks only, no tool/function roles."""
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, ChatMessage):
            raise KBValidationError(f"expected a llama_index ChatMessage, got {type(m).__name__}",
                                    record=f"message #{i}")
        role = _ROLES.get(m.role)
        if role is None:
            raise KBValidationError(f"role {getattr(m.role, 'value', m.role)!r} is not supported: KBLaMLlamaIndexLLM "
                                    "takes system, user and assistant messages (no tool calling)",
                                    record=f"message #{i}", field="role")
        parts = []
        for j, block in enumerate(m.blocks):
            if not isinstance(block, TextBlock):
                raise KBValidationError(f"unsupported content block {type(block).__name__}: text only",
                                        record=f"message #{i}, block #{j}", field="content")
            parts.append(block.text)
        out.append({"role": role, "content": "".join(parts)})
    return out


def triple_node(triple: Triple, score: float, kb_version: int | None = None) -> NodeWithScore:
    """``NodeWithScore(TextNode(<the fact as a sentence>, metadata=...), score)``; text from ``fact_sentence``."""
    metadata: dict[str, Any] = {"name": triple.name, "property": triple.property, "value": triple.value,
                                "triple_id": triple.id, "kb_version": kb_version}
    for key, value in triple.extra.items():
        if key not in metadata and (value is None or isinstance(value, (str, int, float, bool))):
            metadata[key] = value
    node = TextNode(id_=triple.id, text=fact_sentence(triple), metadata=metadata,
                    excluded_llm_metadata_keys=list(metadata), excluded_embed_metadata_keys=list(metadata))
    return NodeWithScore(node=node, score=float(score))


def _stream_responses(pieces: Iterator[tuple[str, dict | None]], respond: Callable[..., Any]) -> Iterator[Any]:
    """The responses of a stream: ``respond(text so far, delta)`` per piece, and for the last
    piece (the one with the KB info) ``respond(text, "", additional_kwargs=info, raw=info)``."""
    text = ""
    for delta, info in pieces:
        text += delta
        if info is None:
            yield respond(text, delta)
        else:
            yield respond(text, "", additional_kwargs=info, raw=info)


class KBLaMLlamaIndexLLM(GenerationSettings, CustomLLM):
    """A LlamaIndex ``LLM`` backed by KBLaM (usable as ``Settings.llm``).

    Same settings as the LangChain ``KBLaMLLM``: ``kb`` (a ``KnowledgeBase``, a
    ``KBManager``, a KB file path, an encoded ``.safetensors`` KB, a list of triples or
    ``None``), ``model_path`` / ``backbone`` / ``encoder`` or an already loaded
    ``kblam_model``, ``mode`` (``"grounded"``, the default, | ``"kblam"``), ``grounded_k``,
    ``max_new_tokens`` (also ``metadata.num_output``), ``temperature``, ``stop``, ``seed``,
    ``top_k_attention`` (how many attended triples the responses list) and ``top_k_kb``.
    ``system_prompt`` (LlamaIndex's field) is used when a chat has no system message.

    ``complete``/``chat`` (and ``stream_*``, ``a*``) format prompts with the backbone's chat
    template. Responses carry ``additional_kwargs`` with ``kb_attention`` (list of
    ``{name, property, value, triple_id, score}``), ``kb_version``, ``kb_size``, ``mode`` and
    token counts (``prompt_tokens``, ``completion_tokens``, ``total_tokens``). The model is
    loaded on first use (reading ``metadata`` loads it, for ``context_window``) and shared.
    """

    def __init__(self, kb: Any = None, **kwargs: Any):
        self._runner = self._init_settings(super().__init__, kb, kwargs, "KBLaMLlamaIndexLLM")

    @classmethod
    def class_name(cls) -> str:
        return "KBLaMLlamaIndexLLM"

    # ------------------------------------------------------------------ access
    @property
    def metadata(self) -> LLMMetadata:
        """``context_window`` = the backbone's ``max_position_embeddings`` (loads the model)."""
        config = self.load_model().backbone.config
        return LLMMetadata(context_window=int(getattr(config, "max_position_embeddings", 2048)),
                           num_output=self.max_new_tokens, is_chat_model=True, is_function_calling_model=False,
                           model_name=self.model_name, system_role=MessageRole.SYSTEM)

    def to_dict(self, **kwargs: Any) -> dict[str, Any]:
        """Settings plus ``kb``: its file path, else its triples inline (``from_dict`` rebuilds the KB).

        An in-memory ``kblam_model`` cannot be written down: :class:`ConfigError`.
        """
        if self.kblam_model is not None:
            raise ConfigError("a KBLaMLlamaIndexLLM built with kblam_model= cannot be serialised; build it from "
                              "model_path=/backbone=/encoder= instead")
        data = super().to_dict(**kwargs)
        data.pop("kblam_model", None)
        data["kb"] = self._runner.source.to_config()
        return data

    def to_payload(self) -> dict[str, Any]:
        """What callbacks/instrumentation see; never loads the model."""
        return {"class_name": self.class_name(), "model_name": self.model_name, "num_output": self.max_new_tokens,
                "is_chat_model": True, "mode": self.mode, "kb": repr(self._runner.source)}

    # ------------------------------------------------------------- generation
    def _options(self, kwargs: dict[str, Any]) -> tuple[dict[str, Any], int]:
        kwargs = {k: v for k, v in kwargs.items() if k != "formatted"}
        if "tools" in kwargs or "tool_choice" in kwargs:
            raise NotImplementedError("KBLaMLlamaIndexLLM does not support tool calling")
        self._reject_unknown_options(kwargs, _CALL_OPTIONS)
        return self._generation_options(kwargs, kwargs.get("stop", self.stop))

    def _info(self, result: Any, tokens: Any, top_k: int) -> dict[str, Any]:
        info = result_metadata(self.model_name, result, tokens, top_k)
        info.update(prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens,
                    total_tokens=result.prompt_tokens + result.completion_tokens)
        return info

    def _generate(self, messages: Sequence[dict[str, str]], **kwargs: Any):
        """One call: ``(GenerationResult, KBTokens | None, info dict)``; the KB snapshot is taken first."""
        opts, top_k = self._options(kwargs)
        model, msgs, tokens = self._runner.prepare(messages, self.system_prompt)
        result = generate_locked(model, msgs, tokens, **opts)
        return result, tokens, self._info(result, tokens, top_k)

    def _start_stream(self, messages: Sequence[dict[str, str]], **kwargs: Any) -> Iterator[tuple[str, dict | None]]:
        """Validate and snapshot now; the returned iterator yields ``(delta, None)`` then ``("", info)``."""
        opts, top_k = self._options(kwargs)
        model, msgs, tokens = self._runner.prepare(messages, self.system_prompt)
        stop = opts.pop("stop")

        def run() -> Iterator[tuple[str, dict | None]]:
            for item in stream_locked(model, msgs, tokens, stop=stop, **opts):
                if isinstance(item, str):
                    yield item, None
                else:
                    yield "", self._info(item, tokens, top_k)

        return run()

    @staticmethod
    def _prompt_messages(prompt: str) -> list[dict[str, str]]:
        if not isinstance(prompt, str):
            raise KBValidationError(f"prompt must be a string, got {type(prompt).__name__}", field="prompt")
        return [{"role": "user", "content": prompt}]

    # ------------------------------------------------------------ completion
    def _complete(self, prompt: str, **kwargs: Any) -> CompletionResponse:
        result, _tokens, info = self._generate(self._prompt_messages(prompt), **kwargs)
        return CompletionResponse(text=result.text, additional_kwargs=info, raw=info)

    def _stream_complete(self, prompt: str, **kwargs: Any) -> CompletionResponseGen:
        pieces = self._start_stream(self._prompt_messages(prompt), **kwargs)
        return _stream_responses(pieces, lambda text, delta, **info: CompletionResponse(text=text, delta=delta, **info))

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """Answer ``prompt`` (a user message in the backbone's chat template)."""
        return self._complete(prompt, **kwargs)

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        """Stream the answer to ``prompt`` token by token (``delta``); the last response carries the KB info."""
        return self._stream_complete(prompt, **kwargs)

    @llm_completion_callback()
    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return await asyncio.to_thread(self._complete, prompt, **kwargs)

    @llm_completion_callback()
    async def astream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseAsyncGen:
        it = await asyncio.to_thread(self._stream_complete, prompt, **kwargs)
        return _aiter(it)

    # ------------------------------------------------------------------ chat
    def _chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        result, _tokens, info = self._generate(chat_messages_to_dicts(messages), **kwargs)
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=result.text),
                            additional_kwargs=info, raw=info)

    def _stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        pieces = self._start_stream(chat_messages_to_dicts(messages), **kwargs)
        return _stream_responses(pieces, lambda text, delta, **info: ChatResponse(
            message=ChatMessage(role=MessageRole.ASSISTANT, content=text), delta=delta, **info))

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Answer a conversation formatted with the backbone's chat template."""
        return self._chat(messages, **kwargs)

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        """Stream a chat answer (``delta`` per piece); the last response carries the KB info."""
        return self._stream_chat(messages, **kwargs)

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return await asyncio.to_thread(self._chat, messages, **kwargs)

    @llm_chat_callback()
    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        it = await asyncio.to_thread(self._stream_chat, messages, **kwargs)
        return _aiter(it)


async def _aiter(it: Iterator[Any]) -> AsyncIterator[Any]:
    """A sync iterator as an async one, each step in a worker thread (the event loop never blocks)."""
    while True:
        item = await asyncio.to_thread(next, it, _DONE)
        if item is _DONE:
            return
        yield item


class KBLaMQueryEngine(BaseQueryEngine):
    """A LlamaIndex query engine that answers from knowledge tokens; sources are the attended triples.

    Args:
        kb: the knowledge base (anything ``KBLaMLlamaIndexLLM`` accepts).
        llm: an existing :class:`KBLaMLlamaIndexLLM` to use (then give no ``kb``/settings).
        top_k_attention: how many attended triples become ``Response.source_nodes``.
        **llm_kwargs: settings for the :class:`KBLaMLlamaIndexLLM` built otherwise
            (``model_path``, ``mode``, ``max_new_tokens``, ``kblam_model``, ...).

    ``query(...)`` returns a ``Response`` whose ``source_nodes`` are
    ``NodeWithScore(TextNode(<the fact as a sentence>, metadata={name, property,
    value, triple_id, kb_version, ...}), score)``, best first, and whose ``metadata`` holds
    ``kb_version``, ``kb_size``, ``mode``, ``null_score`` and token counts.
    ``retrieve(...)`` ranks triples by KB attention without generating.
    """

    def __init__(self, kb: Any = None, *, llm: KBLaMLlamaIndexLLM | None = None, top_k_attention: int | None = None,
                 callback_manager: CallbackManager | None = None, **llm_kwargs: Any):
        if llm is None:
            if top_k_attention is not None:
                llm_kwargs["top_k_attention"] = top_k_attention
            llm = KBLaMLlamaIndexLLM(kb=kb, **llm_kwargs)
        elif kb is not None or llm_kwargs:
            raise ConfigError("pass either llm= or kb=/model settings to KBLaMQueryEngine, not both")
        elif not isinstance(llm, KBLaMLlamaIndexLLM):
            raise ConfigError(f"llm must be a KBLaMLlamaIndexLLM, got {type(llm).__name__}")
        self._llm = llm
        self.top_k_attention = llm.top_k_attention if top_k_attention is None else top_k_attention
        check_generation_options(max_new_tokens=llm.max_new_tokens, temperature=llm.temperature, mode=llm.mode,
                                 grounded_k=llm.grounded_k, top_k_attention=self.top_k_attention)
        super().__init__(callback_manager or llm.callback_manager)

    @property
    def llm(self) -> KBLaMLlamaIndexLLM:
        return self._llm

    @property
    def knowledge_base(self):
        """The live ``KnowledgeBase`` the engine answers from."""
        return self._llm.knowledge_base

    def _get_prompt_modules(self) -> dict[str, Any]:
        return {}

    def _query(self, query_bundle: QueryBundle) -> Response:
        result, tokens, info = self._llm._generate([{"role": "user", "content": query_bundle.query_str}],
                                                   top_k_attention=self.top_k_attention)
        nodes = [triple_node(s.triple, s.score, result.kb_version) for s in result.top_k(self.top_k_attention)]
        metadata = {k: v for k, v in info.items() if k != "kb_attention"}
        return Response(response=result.text, source_nodes=nodes, metadata=metadata)

    async def _aquery(self, query_bundle: QueryBundle) -> Response:
        return await asyncio.to_thread(self._query, query_bundle)

    def retrieve(self, query_bundle: QueryBundle | str) -> list[NodeWithScore]:
        """The ``top_k_attention`` triples the question attends to most (one prefill, no generation)."""
        question = query_bundle if isinstance(query_bundle, str) else query_bundle.query_str
        if self.top_k_attention == 0:
            return []
        top, _null, tokens = self._llm._runner.retrieve(question, self.top_k_attention)
        version = tokens.version if tokens is not None else None
        return [triple_node(s.triple, s.score, version) for s in top]

    # ------------------------------------------------------------ construction
    @classmethod
    def from_documents(cls, documents: Any, *, extractor: Any = None, spacy_model: str | None = None,
                       **engine_kwargs: Any) -> "KBLaMQueryEngine":
        """Build the KB from documents, files or texts with the spaCy reader, then the engine.

        ``documents`` is one item or a list of: LlamaIndex ``Document``/nodes (those made by
        ``KBLaMReader`` carry their triple in ``metadata`` and are used as is; any other is
        run through the extractor), paths to text files or directories, raw texts (see
        ``KBLaMReader``), saved KB files (``.json``/``.jsonl``/``.graphml``/``.safetensors``),
        ``KnowledgeBase`` objects or triples. A single KB file is used directly (an encoded
        ``.safetensors`` KB is then not re-encoded). ``extractor`` (a ``TripleExtractor``) or
        ``spacy_model`` configure extraction. Everything is read before the engine exists:
        a bad input raises a typed error and builds nothing.
        """
        items = [documents] if isinstance(documents, (str, os.PathLike, BaseNode, KnowledgeBase, Triple)) \
            else list(documents)
        if len(items) == 1 and _is_kb_file(items[0]):
            return cls(kb=items[0], **engine_kwargs)
        kb = KnowledgeBase()
        sources: list[Any] = []
        for i, item in enumerate(items):
            if isinstance(item, KnowledgeBase):
                kb.add_many(item.snapshot()[1])
            elif isinstance(item, BaseNode):
                sources.append(item)  # a reader's own node is its triple; any other node is extracted
            elif _is_kb_file(item):
                kb.add_many(resolve_kb(item).current_triples())
            elif isinstance(item, (str, os.PathLike)):
                sources.append(item)
            elif isinstance(item, (Triple, tuple, dict)):
                kb.add_many([item])
            else:
                raise KBValidationError(f"cannot build a KB from {type(item).__name__}", record=f"#{i}")
        if sources:
            from .llamaindex_readers import KBLaMReader

            reader = KBLaMReader(extractor, model=spacy_model)
            reader.load_knowledge_base(sources, kb=kb)
        return cls(kb=kb, **engine_kwargs)


def _is_kb_file(item: Any) -> bool:
    if not isinstance(item, (str, os.PathLike)):
        return False
    text = str(item)
    if "\n" in text:
        return False
    return Path(text).suffix.lower() in (*KB_FILE_SUFFIXES, ENCODED_KB_SUFFIX)
