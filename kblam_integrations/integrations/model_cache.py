"""Process-wide cache of loaded models for the framework integrations.

* :func:`get_model` loads a :class:`~kblam_integrations.model.kblam_model.KBLaMModel` on
  first use and caches it by :class:`ModelSpec`: two chat models / LLMs configured with
  the same weights, backbone and encoder share one object. A failed load caches nothing.
* With no ``model_path`` and the default backbone + encoder, the shipped adapters are
  used; while they do not exist yet (training), an *untrained* model around the same
  backbone is used instead and a warning is logged (:mod:`kblam_integrations.model.shipped`).
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ModelNotFoundError

if TYPE_CHECKING:  # pragma: no cover
    from ..model.kblam_model import KBLaMModel

logger = logging.getLogger(__name__)

__all__ = ["ModelSpec", "cached_model", "check_model_args", "clear_model_cache", "get_model"]


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
