"""The frozen sentence encoder (sentence-transformers), loaded once per process."""

from __future__ import annotations

import os
import threading

from ..errors import ModelNotFoundError
from ..settings import resolve_encoder

_LOCK = threading.Lock()
_LOADED: dict[str, object] = {}


def load_sentence_encoder(spec: str | os.PathLike | None = None, device: str = "cpu"):
    """Return a shared ``SentenceTransformer`` for ``spec`` (default: all-MiniLM-L6-v2 wheel)."""
    from sentence_transformers import SentenceTransformer

    source = resolve_encoder(spec)
    key = f"{source.path}|{device}"
    with _LOCK:
        if key not in _LOADED:
            try:
                model = SentenceTransformer(str(source.path), device=device, local_files_only=True)
            except Exception as exc:  # noqa: BLE001
                raise ModelNotFoundError(f"cannot load sentence encoder {source.name!r} from {source.path}: {exc}") from exc
            model.eval()
            for p in model.parameters():
                p.requires_grad_(False)
            _LOADED[key] = model
        return _LOADED[key]
