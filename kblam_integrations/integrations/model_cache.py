"""Shared, lazy model loading and serialized generation for the framework integrations.

* :func:`get_model` loads a :class:`~kblam_integrations.model.kblam_model.KBLaMModel` on
  first use and caches it process-wide by :class:`ModelSpec`: two chat models / LLMs
  configured with the same weights, backbone and encoder share one object. A failed
  load caches nothing.
* With no ``model_path`` and the default backbone + encoder, the shipped adapters are
  used; while they do not exist yet (training), an *untrained* model around the same
  backbone is used instead and a warning is logged (:mod:`kblam_integrations.model.shipped`).
* :func:`model_lock` is the per-model lock that serializes ``generate`` on a shared
  HF model. Callers take their KB snapshot *before* waiting for it, so every call sees
  the KB as it was when the call started, whatever happens while it waits.
* :func:`generate_locked` / :func:`stream_locked` run one generation under that lock;
  streaming uses transformers' ``TextIteratorStreamer`` with ``generate`` in a worker
  thread (the KB context is a contextvar that ``generate`` sets inside that thread).
"""

from __future__ import annotations

import contextvars
import logging
import math
import os
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from ..errors import ModelNotFoundError

if TYPE_CHECKING:  # pragma: no cover
    from ..encoding.manager import KBTokens
    from ..model.kblam_model import GenerationResult, KBLaMModel

logger = logging.getLogger(__name__)

__all__ = [
    "ModelSpec", "attention_records", "cached_model", "check_model_args", "clear_model_cache", "generate_locked",
    "get_model", "model_lock", "prepare_messages", "retrieve_locked", "stream_locked",
]


# --------------------------------------------------------------------------- specs
def _norm_path_or_name(value: str | os.PathLike | None) -> str | None:
    """Absolute path for things that exist (or look like paths), the name otherwise."""
    if value is None:
        return None
    text = str(value)
    path = Path(text).expanduser()
    if path.exists() or text.startswith((".", "/", "~")):
        return str(path.resolve())
    return text


@dataclass(frozen=True)
class ModelSpec:
    """What identifies a loaded model: weights directory, backbone, sentence encoder.

    ``model_path=None`` means the shipped weights (or, while they do not exist, an
    untrained model). ``backbone``/``encoder`` ``None`` mean "as named by the weights"
    (with ``model_path``) or the defaults (``KBLAM_BACKBONE``/``KBLAM_ENCODER`` or
    SmolLM2 / MiniLM) otherwise.
    """

    model_path: str | None = None
    backbone: str | None = None
    encoder: str | None = None

    @classmethod
    def create(cls, model_path: str | os.PathLike | None = None, backbone: str | os.PathLike | None = None,
               encoder: str | os.PathLike | None = None) -> "ModelSpec":
        """A normalised spec (so that equivalent spellings share one cache entry)."""
        from ..settings import DEFAULT_BACKBONE, DEFAULT_ENCODER

        bb = _norm_path_or_name(backbone)
        enc = _norm_path_or_name(encoder)
        if bb == "default":
            bb = DEFAULT_BACKBONE
        if enc in ("default", "sentence-transformers/all-MiniLM-L6-v2"):
            enc = DEFAULT_ENCODER
        if model_path is None:
            bb = bb or os.environ.get("KBLAM_BACKBONE", DEFAULT_BACKBONE)
            enc = enc or os.environ.get("KBLAM_ENCODER", DEFAULT_ENCODER)
        return cls(_norm_path_or_name(model_path), bb, enc)

    @property
    def name(self) -> str:
        """A short, human-readable model name (LangChain ``model_name``, LlamaIndex ``model_name``)."""
        base = Path(self.backbone).name if self.backbone else None
        if self.model_path is not None:
            return f"kblam:{Path(self.model_path).name}" + (f"@{base}" if base else "")
        return f"kblam:{base}"



def check_model_args(model_path: str | os.PathLike | None = None, backbone: str | os.PathLike | None = None,
                     encoder: str | os.PathLike | None = None) -> None:
    """Cheap, eager checks of explicitly given model locations (nothing is loaded).

    Raises :class:`ModelNotFoundError` for a ``model_path`` that is not a KBLaM checkpoint,
    or a backbone / encoder that is neither a local path nor in the local HF cache.
    """
    from ..model.kblam_model import CONFIG_NAME
    from ..settings import resolve_backbone, resolve_encoder

    if model_path is not None:
        path = Path(model_path).expanduser()
        if not path.is_dir():
            raise ModelNotFoundError(f"KBLaM model path {str(model_path)!r} does not exist or is not a directory")
        if not (path / CONFIG_NAME).is_file():
            raise ModelNotFoundError(f"{str(model_path)!r} is not a KBLaM checkpoint (missing {CONFIG_NAME})")
    if backbone is not None:
        resolve_backbone(backbone)
    if encoder is not None:
        resolve_encoder(encoder)


# --------------------------------------------------------------------------- cache
_CACHE: dict[ModelSpec, "KBLaMModel"] = {}
_CACHE_LOCK = threading.Lock()
_LOAD_LOCKS: dict[ModelSpec, threading.Lock] = {}


def _is_default_stack(spec: ModelSpec) -> bool:
    from ..settings import DEFAULT_BACKBONE, DEFAULT_ENCODER

    return spec.backbone == DEFAULT_BACKBONE and spec.encoder == DEFAULT_ENCODER


def _load(spec: ModelSpec) -> "KBLaMModel":
    """Load ``spec``: its checkpoint, else the shipped weights (default stack only), else an untrained model."""
    from ..model.kblam_model import DEFAULT_WEIGHTS_DIR, KBLaMModel
    from ..model.shipped import load_weights, untrained_model

    if spec.model_path is not None:
        return KBLaMModel.from_pretrained(spec.model_path, backbone=spec.backbone, encoder=spec.encoder)
    if not _is_default_stack(spec):
        logger.warning(
            "No model_path given for backbone %r / encoder %r: the shipped adapters only fit the default "
            "stack, so an UNTRAINED KBLaM model is used (train one and pass model_path=...).",
            spec.backbone, spec.encoder)
        return untrained_model(spec.backbone, spec.encoder)
    model, trained = load_weights()
    if not trained:
        logger.warning(
            "No shipped KBLaM weights at %s (train them with `kblam train`); using an UNTRAINED KBLaM "
            "model around %s + %s: answers will not use the knowledge base reliably.",
            DEFAULT_WEIGHTS_DIR, spec.backbone, spec.encoder)
    return model


def get_model(spec: ModelSpec) -> "KBLaMModel":
    """The shared model for ``spec``, loading it on first use (one load per spec, even under races)."""
    with _CACHE_LOCK:
        model = _CACHE.get(spec)
        if model is not None:
            return model
        load_lock = _LOAD_LOCKS.setdefault(spec, threading.Lock())
    with load_lock:
        with _CACHE_LOCK:
            model = _CACHE.get(spec)
        if model is not None:
            return model
        model = _load(spec)  # raises -> nothing is cached
        with _CACHE_LOCK:
            _CACHE[spec] = model
        return model


def cached_model(spec: ModelSpec) -> "KBLaMModel | None":
    """The model for ``spec`` if it is already loaded (never loads)."""
    with _CACHE_LOCK:
        return _CACHE.get(spec)


def clear_model_cache() -> None:
    """Forget every loaded model (objects still referenced elsewhere stay alive)."""
    with _CACHE_LOCK:
        _CACHE.clear()
        _LOAD_LOCKS.clear()


# --------------------------------------------------------------------- generation
_LOCKS: "weakref.WeakKeyDictionary[Any, threading.Lock]" = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def model_lock(model: Any) -> threading.Lock:
    """The lock that serializes generation on ``model`` (one per model object, shared by all wrappers)."""
    with _LOCKS_GUARD:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = _LOCKS[model] = threading.Lock()
        return lock


def generate_locked(model: "KBLaMModel", messages: Sequence[dict[str, str]], tokens: "KBTokens | None",
                    **options: Any) -> "GenerationResult":
    """``model.generate`` on an already-taken KB snapshot, serialized per model."""
    with model_lock(model):
        return model.generate(list(messages), kb=tokens, **options)


def retrieve_locked(model: "KBLaMModel", messages: Sequence[dict[str, str]] | str, tokens: "KBTokens | None",
                    k: int):
    """``model.retrieve`` (one prefill) on a KB snapshot, serialized per model."""
    with model_lock(model):
        return model.retrieve(messages if isinstance(messages, str) else list(messages), tokens, k=k)


class _StreamText:
    """Turns raw streamed text into pieces whose concatenation equals the final answer.

    ``generate`` strips the answer and cuts it at the first stop string; pieces are
    emitted with leading whitespace dropped and trailing whitespace / a possible stop
    prefix held back until the next piece shows whether they belong to the answer.
    """

    def __init__(self, stop: Sequence[str] | None):
        self.stop = [s for s in (stop or ()) if s]
        self.raw = ""
        self.sent = ""
        self.stopped = False

    def push(self, piece: str) -> str:
        if self.stopped or not piece:
            return ""
        self.raw += piece
        text = self.raw.lstrip()
        hits = [i for i in (text.find(s) for s in self.stop) if i >= 0]
        if hits:
            text = text[: min(hits)]
            self.stopped = True
        else:
            hold = max((k for s in self.stop for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
            text = text[: len(text) - hold]
        text = text.rstrip()
        if len(text) <= len(self.sent):
            return ""
        out = text[len(self.sent):]
        self.sent = text
        return out

    def finish(self, final: str) -> str:
        """What is left to emit so that the pieces add up to ``final``."""
        if final.startswith(self.sent):
            rest = final[len(self.sent):]
            self.sent = final
            return rest
        logger.debug("streamed text %r is not a prefix of the final answer %r", self.sent, final)
        return ""


def stream_locked(model: "KBLaMModel", messages: Sequence[dict[str, str]], tokens: "KBTokens | None", *,
                  stop: Sequence[str] | None = None, **options: Any) -> Iterator["str | GenerationResult"]:
    """Stream one generation: yields text pieces, then the final :class:`GenerationResult`.

    ``generate`` runs in a worker thread (under :func:`model_lock`) feeding a
    ``TextIteratorStreamer``; an error in the worker is re-raised here. The pieces add
    up exactly to ``result.text`` (stripped, cut at the first stop string).
    """
    from transformers import TextIteratorStreamer

    streamer = TextIteratorStreamer(model.tokenizer, skip_prompt=True, skip_special_tokens=True)
    box: dict[str, Any] = {}
    msgs = list(messages)

    def work() -> None:
        try:
            with model_lock(model):
                box["result"] = model.generate(msgs, kb=tokens, stop=list(stop) if stop else None,
                                               streamer=streamer, **options)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
            box["error"] = exc
            streamer.end()

    ctx = contextvars.copy_context()
    worker = threading.Thread(target=ctx.run, args=(work,), name="kblam-stream", daemon=True)
    worker.start()
    text = _StreamText(stop)
    try:
        for piece in streamer:
            out = text.push(piece)
            if out:
                yield out
    finally:
        worker.join()
    if "error" in box:
        raise box["error"]
    result = box["result"]
    rest = text.finish(result.text)
    if rest:
        yield rest
    yield result


def attention_records(result: "GenerationResult", k: int) -> list[dict[str, Any]]:
    """The ``k`` most attended triples as ``{name, property, value, triple_id, score}``, best first."""
    if k <= 0:
        return []
    return [
        {"name": s.triple.name, "property": s.triple.property, "value": s.triple.value,
         "triple_id": s.triple.id, "score": float(s.score)}
        for s in result.top_k(k)
    ]


def prepare_messages(messages: Sequence[dict[str, str]], system_prompt: str | None = None) -> list[dict[str, str]]:
    """Final chat messages for the backbone's template.

    Raises :class:`KBValidationError` for an empty list; merges consecutive messages of the
    same role (many chat templates require alternating roles); puts ``system_prompt``
    first when the conversation has no system message (``None``: the model's default).
    """
    from ..errors import KBValidationError

    if not messages:
        raise KBValidationError("at least one message is required", field="messages")
    merged: list[dict[str, str]] = []
    for m in messages:
        if merged and merged[-1]["role"] == m["role"]:
            merged[-1] = {"role": m["role"], "content": f"{merged[-1]['content']}\n\n{m['content']}"}
        else:
            merged.append({"role": m["role"], "content": m["content"]})
    if system_prompt is not None and merged[0]["role"] != "system":
        merged.insert(0, {"role": "system", "content": system_prompt})
    return merged


# ------------------------------------------------------------------------- runner
class KBLaMRunner:
    """What both integrations share: a lazily loaded (shared) model, a live KB, serialized calls.

    Args:
        kb: anything :func:`~kblam_integrations.integrations.kb_source.resolve_kb` accepts.
        model_path / backbone / encoder: where the model comes from (see :class:`ModelSpec`);
            explicit values are checked eagerly, nothing is loaded before the first call.
        kblam_model: an already loaded :class:`KBLaMModel` to use instead (no loading).
    """

    def __init__(self, kb: Any = None, *, model_path: str | os.PathLike | None = None,
                 backbone: str | os.PathLike | None = None, encoder: str | os.PathLike | None = None,
                 kblam_model: "KBLaMModel | None" = None):
        from ..errors import ConfigError
        from .kb_source import resolve_kb

        if kblam_model is not None:
            if any(v is not None for v in (model_path, backbone, encoder)):
                raise ConfigError("pass either kblam_model= or model_path=/backbone=/encoder=, not both")
            if not hasattr(kblam_model, "generate") or not hasattr(kblam_model, "encoder"):
                raise ConfigError(f"kblam_model must be a KBLaMModel, got {type(kblam_model).__name__}")
            self.spec = None
        else:
            check_model_args(model_path, backbone, encoder)
            self.spec = ModelSpec.create(model_path, backbone, encoder)
        self.source = resolve_kb(kb)
        self._model = kblam_model

    @property
    def model_name(self) -> str:
        if self.spec is not None:
            return self.spec.name
        return f"kblam:{Path(str(self._model.config.backbone)).name}"

    @property
    def model(self) -> "KBLaMModel | None":
        """The model if it is loaded already (None before the first call)."""
        if self._model is None and self.spec is not None:
            self._model = cached_model(self.spec)
        return self._model

    def load_model(self) -> "KBLaMModel":
        """The model, loading it (once per process and spec) if needed."""
        model = self._model
        if model is None:
            model = self._model = get_model(self.spec)
        return model

    @property
    def knowledge_base(self):
        """The live :class:`KnowledgeBase` (None without a KB); for an encoded file this loads the model."""
        if self.source.needs_model_for_kb:
            self.source.bind(self.load_model())
        return self.source.knowledge_base

    @property
    def kb_manager(self):
        """The :class:`KBManager` bound to the model (loads the model; None without a KB)."""
        return self.source.bind(self.load_model())

    def prepare(self, messages: Sequence[dict[str, str]], system_prompt: str | None = None):
        """Validate messages, load the model, take the KB snapshot: ``(model, messages, tokens)``."""
        msgs = prepare_messages(messages, system_prompt)
        model = self.load_model()
        msgs = model.messages_for(msgs)  # validates roles/contents, adds the model's default system prompt
        tokens = self.source.snapshot(model)
        return model, msgs, tokens

    def retrieve(self, question: str, k: int):
        """Top-``k`` triples by KB attention for ``question`` (one prefill): ``(top, null, tokens)``."""
        model, msgs, tokens = self.prepare([{"role": "user", "content": question}])
        if tokens is None or len(tokens) == 0:
            return [], 0.0, tokens
        top, null = retrieve_locked(model, msgs, tokens, k)
        return top, null, tokens


def check_generation_options(*, max_new_tokens: Any, temperature: Any, mode: Any, grounded_k: Any,
                             top_k_attention: Any, top_k_kb: Any = None, stop: Any = None) -> None:
    """Raise :class:`ConfigError` for invalid generation settings."""
    from ..errors import ConfigError

    def positive_int(name: str, v: Any, allow_none: bool = False, allow_zero: bool = False) -> None:
        if v is None and allow_none:
            return
        if not isinstance(v, int) or isinstance(v, bool) or v < (0 if allow_zero else 1):
            raise ConfigError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} integer, got {v!r}")

    positive_int("max_new_tokens", max_new_tokens)
    positive_int("grounded_k", grounded_k, allow_none=True)
    positive_int("top_k_attention", top_k_attention, allow_zero=True)
    positive_int("top_k_kb", top_k_kb, allow_none=True)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not math.isfinite(temperature) \
            or temperature < 0:  # NaN would decode greedily without a word, inf samples gibberish
        raise ConfigError(f"temperature must be a finite number >= 0, got {temperature!r}")
    if mode not in ("kblam", "grounded"):
        raise ConfigError(f"mode must be 'kblam' or 'grounded', got {mode!r}")
    if stop is not None and (isinstance(stop, str) or not all(isinstance(s, str) for s in stop)):
        raise ConfigError(f"stop must be a list of strings, got {stop!r}")


# Generic framework code passes these to any chat model / LLM; a local model has no use for them.
IGNORED_SETTINGS = frozenset({"timeout", "request_timeout", "max_retries", "api_key", "base_url", "api_base"})


def _normalise_settings(cls: type, kwargs: dict[str, Any]) -> None:
    """Prepare constructor arguments in place: ``max_tokens`` is an alias of ``max_new_tokens``,
    framework-generic settings are dropped, anything else unknown raises :class:`ConfigError`."""
    from ..errors import ConfigError

    max_tokens = kwargs.pop("max_tokens", None)
    if max_tokens is not None and kwargs.get("max_new_tokens") is None:
        kwargs["max_new_tokens"] = max_tokens
    known = set(IGNORED_SETTINGS)
    for name, info in getattr(cls, "model_fields", {}).items():
        known.add(name)
        if info.alias:
            known.add(info.alias)
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} settings {unknown}")
    for name in IGNORED_SETTINGS & set(kwargs):
        kwargs.pop(name)
