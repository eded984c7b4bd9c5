"""What both framework wrappers share: a lazily loaded (shared) model, a live KB, serialized calls."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from .messages import prepare_messages
from .model_cache import ModelSpec, cached_model, check_model_args, get_model
from .serial_calls import retrieve_locked

if TYPE_CHECKING:  # pragma: no cover
    from ..model.kblam_model import KBLaMModel

__all__ = ["KBLaMRunner"]


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
