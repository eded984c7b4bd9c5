"""KBLaM (knowledge-base augmented language models) for LangChain and LlamaIndex.

Heavy modules (torch, transformers, spaCy) are imported lazily on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import (
    CacheMismatchError,
    ConfigError,
    DuplicateTripleError,
    KBFormatError,
    KBLaMError,
    KBValidationError,
    ModelNotFoundError,
    TripleNotFoundError,
)
from .kb import KBChange, KnowledgeBase, Triple

__version__ = "0.1.0"

_LAZY = {
    "TripleExtractor": "kblam_integrations.kb.extraction",
    "KBLaMTextLoader": "kblam_integrations.integrations.langchain_loaders",
    "KBLaMReader": "kblam_integrations.integrations.llamaindex_readers",
    "KBEncoder": "kblam_integrations.encoding.kb_encoder",
    "KBManager": "kblam_integrations.encoding.manager",
    "KBLaMConfig": "kblam_integrations.model.config",
    "KBLaMModel": "kblam_integrations.model.kblam_model",
    "KBLaMLLM": "kblam_integrations.integrations.langchain",
    "KBLaMLlamaIndexLLM": "kblam_integrations.integrations.llamaindex",
    "KBLaMQueryEngine": "kblam_integrations.integrations.llamaindex",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'kblam_integrations' has no attribute {name!r}")


__all__ = [
    "CacheMismatchError", "ConfigError", "DuplicateTripleError", "KBChange", "KBFormatError", "KBLaMError",
    "KBValidationError", "KnowledgeBase", "ModelNotFoundError", "Triple", "TripleNotFoundError", *_LAZY,
]
