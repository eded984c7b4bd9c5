"""The spaCy pipeline, loaded once per process and shared by every extractor."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from ...errors import ModelNotFoundError

if TYPE_CHECKING:  # pragma: no cover
    from spacy.language import Language

_NLP_CACHE: dict[str, "Language"] = {}
_NLP_LOCK = threading.Lock()


def load_spacy_pipeline(model: str | None = None) -> "Language":
    """``spacy.load`` the resolved pipeline once per process; extractors share it."""
    from ...settings import resolve_spacy_model

    name = resolve_spacy_model(model)
    with _NLP_LOCK:
        nlp = _NLP_CACHE.get(name)
        if nlp is None:
            import spacy

            try:
                nlp = spacy.load(name)
            except OSError as exc:
                raise ModelNotFoundError(f"cannot load spaCy pipeline {name!r}: {exc}") from exc
            _NLP_CACHE[name] = nlp
        return nlp

