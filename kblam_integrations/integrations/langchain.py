"""LangChain integration: :class:`KBLaMLLM`, a chat model that attends to a knowledge base.

.. code-block:: python

    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate
    from kblam_integrations import KnowledgeBase
    from kblam_integrations.integrations.langchain import KBLaMLLM

    kb = KnowledgeBase([("Veltrano Dynamics", "founder", "Marisol Okonkwo")])
    chain = ChatPromptTemplate.from_messages([("human", "{question}")]) | KBLaMLLM(kb=kb) | StrOutputParser()
    chain.invoke({"question": "Who founded Veltrano Dynamics?"})

The default ``mode="grounded"`` lets KB attention pick the triple and puts its sentence in
the prompt (``mode="kblam"``: knowledge tokens only, no KB text in the prompt; its value
path is untrained in the shipped weights). Either way every triple is a knowledge token the
frozen backbone attends to. ``response_metadata["kb_attention"]`` lists the triples
the answer attended to most. The KB is live: changes made through the
``KnowledgeBase`` (or its ``KBManager``) are seen by the next call, and only changed
triples are re-encoded.
"""

from __future__ import annotations

import logging
from typing import Any, Iterator, Sequence

from .._optional import require

require("langchain_core", extra="langchain", feature="the LangChain integration")

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import PrivateAttr

from ..errors import ConfigError, KBValidationError
from .generation_settings import GenerationSettings
from .messages import prepare_messages
from .results import result_metadata
from .serial_calls import generate_locked
from .streaming import stream_locked

logger = logging.getLogger(__name__)

__all__ = ["KBLaMLLM", "KBLaMSentenceEmbeddings", "messages_to_dicts"]

_CALL_OPTIONS = ("max_new_tokens", "max_tokens", "temperature", "mode", "grounded_k", "top_k_kb",
                 "top_k_attention", "seed", "model")
# Passed along by LangChain itself in some code paths; they carry nothing for us.
_IGNORED_OPTIONS = ("stream", "ls_structured_output_format")

_UNSUPPORTED_TOOLS = (
    "KBLaMLLM does not support tool calling: the frozen backbone (SmolLM2-135M-Instruct by default) was not "
    "trained for it, and KBLaM answers from knowledge tokens instead of tools. Use a tool-calling chat model "
    "for agents and call KBLaMLLM for the knowledge-base questions."
)
_UNSUPPORTED_STRUCTURED = (
    "KBLaMLLM does not support structured output (no tool calling, no JSON mode). Parse its text answer "
    "yourself (e.g. with an output parser) or use a chat model with structured-output support."
)

_ROLES = {"system": "system", "developer": "system", "user": "user", "human": "user",
          "assistant": "assistant", "ai": "assistant"}


def _content_text(content: Any, index: int) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise KBValidationError(f"message content must be a string or a list of text parts, got "
                                f"{type(content).__name__}", record=f"message #{index}", field="content")
    parts = []
    for j, part in enumerate(content):
        if isinstance(part, str):
            parts.append(part)
        elif isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
            parts.append(part["text"])
        else:
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            raise KBValidationError(
                f"unsupported content part {kind!r}: KBLaMLLM takes text only (no images, audio, files or "
                "tool blocks)", record=f"message #{index}, part #{j}", field="content")
    return "".join(parts)


def messages_to_dicts(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    """LangChain messages -> ``[{"role", "content"}]`` for the backbone's chat template.

    System, human and AI messages (and ``ChatMessage`` with those roles) are accepted;
    tool/function messages, AI tool calls and non-text content parts raise
    :class:`KBValidationError`. A message's ``name`` is ignored.
    """
    out = []
    for i, m in enumerate(messages):
        if isinstance(m, SystemMessage):
            role = "system"
        elif isinstance(m, HumanMessage):
            role = "user"
        elif isinstance(m, AIMessage):
            if m.tool_calls or m.invalid_tool_calls:
                raise KBValidationError("AI messages with tool calls are not supported (" + _UNSUPPORTED_TOOLS + ")",
                                        record=f"message #{i}", field="tool_calls")
            role = "assistant"
        elif isinstance(m, ChatMessage) and m.role in _ROLES:
            role = _ROLES[m.role]
        elif isinstance(m, BaseMessage):
            raise KBValidationError(f"{type(m).__name__} (type {m.type!r}) is not supported: KBLaMLLM takes system, "
                                    "human and AI messages only (no tool calling)", record=f"message #{i}",
                                    field="type")
        else:
            raise KBValidationError(f"expected a LangChain message, got {type(m).__name__}", record=f"message #{i}")
        out.append({"role": role, "content": _content_text(m.content, i)})
    return out


class KBLaMLLM(GenerationSettings, BaseChatModel):
    """A LangChain chat model backed by KBLaM: a frozen HF decoder attending to a knowledge base.

    Args:
        kb: the knowledge base: a ``KnowledgeBase`` (live), a ``KBManager``, a path to a
            saved KB (``.json``/``.jsonl``/``.graphml``) or to an encoded KB
            (``.safetensors``), a list of triples / ``(name, property, value)`` tuples /
            dicts, or ``None`` (no KB: exactly the plain backbone chat model).
        model_path: a trained KBLaM checkpoint directory; ``None``: the shipped weights
            (an untrained model, with a warning, while they do not exist).
        backbone / encoder: override the decoder / sentence encoder (local path, ``.gguf``
            or an HF id already in the local cache).
        kblam_model: an already loaded ``KBLaMModel`` to use (instead of the three above).
        mode: ``"grounded"`` (the default: KB attention picks ``grounded_k`` triples whose
            sentences are put in the prompt; refuses when the null token wins) or ``"kblam"``
            (knowledge tokens only; it picks the right triple far more often than it writes
            its value, so it is opt-in).
        max_new_tokens (alias ``max_tokens``), temperature (0: greedy), stop, seed.
        top_k_attention: how many attended triples ``response_metadata["kb_attention"]`` lists.
        top_k_kb: sparse KB attention (each query keeps its top-k knowledge tokens); None: all.
        system_prompt: used when the conversation has no system message (None: the model's default).

    The model is loaded lazily at the first call and shared by every ``KBLaMLLM`` with the
    same weights/backbone/encoder. Calls on one model are serialized; each call uses one
    consistent KB snapshot taken when it starts. Tool calling, structured output, JSON
    mode and non-text inputs are not supported.
    """

    system_prompt: str | None = None
    streaming: bool = False

    _model_id: str | None = PrivateAttr(default=None)

    def __init__(self, kb: Any = None, **kwargs: Any):
        # No cache override: LangChain's cache (set_llm_cache / cache=) is safe, the cache key
        # holds a fingerprint of the KB's triples (see _get_llm_string).
        self._runner = self._init_settings(super().__init__, kb, kwargs, "KBLaMLLM")

    # ------------------------------------------------------------ introspection
    @property
    def _llm_type(self) -> str:
        return "kblam-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name, "mode": self.mode, "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature, "grounded_k": self.grounded_k, "top_k_kb": self.top_k_kb,
            "top_k_attention": self.top_k_attention, "kb": repr(self._runner.source),
            "kb_version": self._runner.source.version,
        }

    def _get_llm_string(self, stop: list[str] | None = None, **kwargs: Any) -> str:
        """The LLM-cache key: every setting that changes an answer, plus the model's identity and a
        fingerprint of the KB's current triples, so a KB edit misses the cache instead of
        returning a stale answer."""
        params = {**self._identifying_params, **kwargs, "stop": stop if stop is not None else self.stop,
                  "seed": self.seed, "system_prompt": self.system_prompt, "model": self._model_identity(),
                  "kb": self._runner.source.fingerprint()}
        params.pop("kb_version", None)  # versions differ between KB objects; the fingerprint does not
        return str(sorted(params.items()))

    def _model_identity(self) -> str:
        runner = self._runner
        if runner.spec is not None:
            return repr(runner.spec)
        if self._model_id is None:  # an in-memory model: its adapters' fingerprint (computed once)
            encoder = getattr(runner.load_model(), "encoder", None)
            self._model_id = str(getattr(encoder, "fingerprint", None) or id(runner.load_model()))
        return self._model_id

    # ------------------------------------------------------------ serialisation
    @classmethod
    def is_lc_serializable(cls) -> bool:
        """``dumpd``/``dumps`` work: settings plus the KB (its file path, else its triples inline)."""
        return True

    @property
    def lc_attributes(self) -> dict[str, Any]:
        kb = self._runner.source.to_config()
        return {"kb": kb} if kb is not None else {}

    def to_json(self):
        if self.kblam_model is not None:  # an in-memory model cannot be written down
            return self.to_json_not_implemented()
        return super().to_json()

    # ------------------------------------------------------------------ tokens
    def get_token_ids(self, text: str) -> list[int]:
        """Token ids from the backbone's own tokenizer (loads the tokenizer only, not the model)."""
        if self.custom_get_token_ids is not None:
            return self.custom_get_token_ids(text)
        from .tokenizer import runner_tokenizer

        return list(runner_tokenizer(self._runner).encode(text, add_special_tokens=False))

    def get_num_tokens_from_messages(self, messages: list[BaseMessage], tools: Sequence[Any] | None = None) -> int:
        """Tokens of ``messages`` in the backbone's chat template (what ``trim_messages`` counts).

        The system prompt is counted as sent; grounded mode's fact sentences are added at call
        time and are not.
        """
        if tools:
            raise NotImplementedError(_UNSUPPORTED_TOOLS)
        if not messages:
            return 0
        from .tokenizer import chat_token_count, runner_tokenizer

        dicts = prepare_messages(messages_to_dicts(messages), self.system_prompt)
        return chat_token_count(runner_tokenizer(self._runner), dicts)

    def as_retriever(self, k: int = 4, **kwargs: Any):
        """A :class:`~kblam_integrations.integrations.langchain_retriever.KBLaMRetriever` over this model's KB
        (the knowledge tokens are shared, not encoded twice)."""
        from .langchain_retriever import KBLaMRetriever

        return KBLaMRetriever.from_llm(self, k=k, **kwargs)

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(ls_provider="kblam", ls_model_type="chat",
                                 ls_model_name=kwargs.get("model") or self.model_name,
                                 ls_temperature=kwargs.get("temperature", self.temperature),
                                 ls_max_tokens=kwargs.get("max_new_tokens", kwargs.get("max_tokens",
                                                                                        self.max_new_tokens)))
        if stop or self.stop:
            params["ls_stop"] = stop or self.stop
        return params

    # ------------------------------------------------------------------ calling
    def _options(self, stop: list[str] | None, kwargs: dict[str, Any]) -> tuple[dict[str, Any], int]:
        if "tools" in kwargs or "tool_choice" in kwargs:
            raise NotImplementedError(_UNSUPPORTED_TOOLS)
        self._reject_unknown_options(kwargs, _CALL_OPTIONS, _IGNORED_OPTIONS)
        requested = kwargs.get("model")
        if requested is not None and requested != self.model_name:
            raise ConfigError(f"per-call model override is not supported (asked for {requested!r}, this is "
                              f"{self.model_name!r}); create another KBLaMLLM(backbone=..., model_path=...)")
        return self._generation_options(kwargs, list(stop) if stop is not None else self.stop)

    def _response(self, result: Any, tokens: Any, top_k: int, max_new_tokens: int) -> tuple[dict, UsageMetadata]:
        metadata = result_metadata(self.model_name, result, tokens, top_k)
        metadata["finish_reason"] = "length" if result.completion_tokens >= max_new_tokens else "stop"
        usage = UsageMetadata(input_tokens=result.prompt_tokens, output_tokens=result.completion_tokens,
                              total_tokens=result.prompt_tokens + result.completion_tokens)
        return metadata, usage

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        opts, top_k = self._options(stop, kwargs)
        dicts = messages_to_dicts(messages)
        model, msgs, tokens = self._runner.prepare(dicts, self.system_prompt)
        result = generate_locked(model, msgs, tokens, **opts)
        metadata, usage = self._response(result, tokens, top_k, opts["max_new_tokens"])
        message = AIMessage(content=result.text, response_metadata=metadata, usage_metadata=usage)
        return ChatResult(generations=[ChatGeneration(message=message)],
                          llm_output={"model_name": self.model_name, "kb_version": result.kb_version})

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        opts, top_k = self._options(stop, kwargs)
        dicts = messages_to_dicts(messages)
        model, msgs, tokens = self._runner.prepare(dicts, self.system_prompt)
        stop_strings = opts.pop("stop")
        for item in stream_locked(model, msgs, tokens, stop=stop_strings, **opts):
            if isinstance(item, str):
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=item))
                if run_manager is not None:  # langchain-core >= 1 reports tokens itself and passes None
                    run_manager.on_llm_new_token(item, chunk=chunk)
                yield chunk
            else:
                metadata, usage = self._response(item, tokens, top_k, opts["max_new_tokens"])
                yield ChatGenerationChunk(message=AIMessageChunk(
                    content="", response_metadata=metadata, usage_metadata=usage, chunk_position="last"))

    # ------------------------------------------------------------- unsupported
    def bind_tools(self, tools: Sequence[Any], *, tool_choice: str | None = None, **kwargs: Any):
        """Not supported: raises :class:`NotImplementedError`."""
        raise NotImplementedError(_UNSUPPORTED_TOOLS)

    def with_structured_output(self, schema: Any, *, include_raw: bool = False, **kwargs: Any):
        """Not supported: raises :class:`NotImplementedError`."""
        raise NotImplementedError(_UNSUPPORTED_STRUCTURED)


class KBLaMSentenceEmbeddings(Embeddings):
    """LangChain ``Embeddings`` over the sentence encoder KBLaM uses (all-MiniLM-L6-v2 by default).

    Loaded lazily and shared with KBLaM (one copy per process); vectors are L2-normalised.
    Handy for a classic RAG baseline on the same encoder, e.g. with
    ``langchain_core.vectorstores.InMemoryVectorStore``.
    """

    def __init__(self, encoder: str | None = None, *, batch_size: int = 64):
        self.encoder = encoder
        self.batch_size = batch_size

    def _model(self):
        from ..encoding.sentence_encoder import load_sentence_encoder

        return load_sentence_encoder(self.encoder)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        texts = list(texts)
        if not texts:
            return []
        bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
        if bad:
            raise KBValidationError("texts to embed must be strings", record=f"text #{bad[0]}")
        emb = self._model().encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                                   normalize_embeddings=True, show_progress_bar=False)
        return [[float(x) for x in row] for row in emb]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]
