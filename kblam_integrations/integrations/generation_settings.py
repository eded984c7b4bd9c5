"""The generation settings both framework wrappers share, declared and checked once.

:class:`GenerationSettings` is a pydantic model of fields that LangChain's
``KBLaMLLM`` and LlamaIndex's ``KBLaMLlamaIndexLLM`` both inherit (each framework's base
class is a pydantic model too), so the two wrappers cannot drift apart in names,
defaults or checks. Per-call overrides are resolved against it once,
by :meth:`GenerationSettings._generation_options`.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional, Sequence

from pydantic import BaseModel, Field, PrivateAttr, ValidationError

from ..errors import ConfigError
from ..model.modes import AnswerMode, check_mode
from .runner import KBLaMRunner

__all__ = ["IGNORED_SETTINGS", "GenerationSettings", "check_generation_options", "normalise_settings"]


class GenerationSettings(BaseModel):
    """Where the model comes from, which KB it attends to, and how it generates."""

    kb: Any = Field(default=None, exclude=True, repr=False,
                    description="The knowledge base: a KnowledgeBase (live), a KBManager, a KB file, an encoded "
                                ".safetensors KB, a list of triples, or None (the plain backbone).")
    model_path: Optional[str] = Field(default=None, description="A trained KBLaM checkpoint directory "
                                                                "(None: the shipped weights).")
    backbone: Optional[str] = Field(default=None, description="Backbone override (path, .gguf or cached HF id).")
    encoder: Optional[str] = Field(default=None, description="Sentence-encoder override.")
    kblam_model: Any = Field(default=None, exclude=True, repr=False, description="An already loaded KBLaMModel.")
    mode: AnswerMode = Field(
        default="grounded",
        description="'grounded' (default): KB attention picks the asked triples, whose sentences go in the prompt; "
                    "'kblam': their value blocks are attended instead (the KB's text never enters the prompt; "
                    "see docs/evaluation.md for both modes' numbers).")
    grounded_k: Optional[int] = Field(default=None, ge=1,
                                      description="Triples put in the prompt in grounded mode; None: as many as "
                                                  "the question asks for (one, two for a two-fact question).")
    max_new_tokens: int = Field(default=256, ge=1, description="Maximum number of generated tokens.")
    temperature: float = Field(default=0.0, ge=0.0, description="Sampling temperature (0: greedy).")
    stop: Optional[list[str]] = Field(default=None, description="Stop strings.")
    seed: Optional[int] = Field(default=None, description="Sampling seed.")
    top_k_attention: int = Field(default=5, ge=0, description="How many attended triples responses list.")
    top_k_kb: Optional[int] = Field(default=None, ge=1,
                                    description="Sparse KB attention (top-k knowledge tokens per query); None: all.")

    _runner: KBLaMRunner = PrivateAttr()  # set by _init_settings

    @property
    def model_name(self) -> str:
        """Model name reported in responses' metadata and traces, e.g. ``kblam:smollm2``."""
        return self._runner.model_name

    def load_model(self):
        """The shared ``KBLaMModel`` (loaded on first use; the same object for equal settings)."""
        return self._runner.load_model()

    @property
    def knowledge_base(self):
        """The live ``KnowledgeBase`` (None without one); mutate it and the next call sees it."""
        return self._runner.knowledge_base

    @property
    def kb_manager(self):
        """The ``KBManager`` that keeps the knowledge tokens in step with the KB (loads the model)."""
        return self._runner.kb_manager

    def _init_settings(self, init: Callable[..., None], kb: Any, kwargs: dict[str, Any],
                       what: str) -> KBLaMRunner:
        """The wrappers' constructor: normalise ``kwargs`` (:func:`normalise_settings`), run the
        framework base class's ``init`` (a pydantic ``ValidationError`` becomes a
        :class:`ConfigError` naming ``what``) and return the :class:`KBLaMRunner` these settings
        describe."""
        normalise_settings(type(self), kwargs)
        try:
            init(kb=kb, **kwargs)
        except ValidationError as exc:
            raise ConfigError(f"invalid {what} settings: {exc}") from exc
        return KBLaMRunner(kb, model_path=self.model_path, backbone=self.backbone, encoder=self.encoder,
                           kblam_model=self.kblam_model)

    def _reject_unknown_options(self, kwargs: dict[str, Any], accepted: Sequence[str],
                                ignored: Sequence[str] = ()) -> None:
        """Raise :class:`ConfigError` naming the per-call options that are neither accepted nor ignored."""
        unknown = sorted(set(kwargs) - set(accepted) - set(ignored))
        if unknown:
            raise ConfigError(f"unknown {type(self).__name__} call options {unknown}; accepted: {list(accepted)}")

    def _generation_options(self, kwargs: dict[str, Any],
                            stop: Optional[Sequence[str]]) -> tuple[dict[str, Any], int]:
        """Per-call ``kwargs`` over these settings: ``(options for generate, top_k_attention)``.

        ``stop`` is the call's stop list, already resolved against ``self.stop`` by the caller
        (the frameworks pass it differently). Invalid values raise :class:`ConfigError`.
        """
        max_new = kwargs.get("max_new_tokens")
        if max_new is None:
            max_new = kwargs.get("max_tokens")
        if max_new is None:
            max_new = self.max_new_tokens
        opts = {
            "max_new_tokens": max_new,
            "temperature": kwargs.get("temperature", self.temperature),
            "mode": kwargs.get("mode", self.mode),
            "grounded_k": kwargs.get("grounded_k", self.grounded_k),
            "top_k_kb": kwargs.get("top_k_kb", self.top_k_kb),
            "stop": stop,
        }
        top_k = kwargs.get("top_k_attention", self.top_k_attention)
        check_generation_options(top_k_attention=top_k, **opts)
        opts["stop"] = [s for s in (opts["stop"] or ()) if s] or None
        opts["seed"] = kwargs.get("seed", self.seed)
        return opts, top_k


def check_generation_options(*, max_new_tokens: Any, temperature: Any, mode: Any, grounded_k: Any,
                             top_k_attention: Any, top_k_kb: Any = None, stop: Any = None) -> None:
    """Raise :class:`ConfigError` for invalid generation settings."""
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
    check_mode(mode)
    if stop is not None and (isinstance(stop, str) or not all(isinstance(s, str) for s in stop)):
        raise ConfigError(f"stop must be a list of strings, got {stop!r}")


# Generic framework code passes these to any chat model / LLM; a local model has no use for them.
IGNORED_SETTINGS = frozenset({"timeout", "request_timeout", "max_retries", "api_key", "base_url", "api_base"})


def normalise_settings(cls: type, kwargs: dict[str, Any]) -> None:
    """Prepare constructor arguments in place: ``max_tokens`` is an alias of ``max_new_tokens``,
    framework-generic settings are dropped, anything else unknown raises :class:`ConfigError`."""
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
