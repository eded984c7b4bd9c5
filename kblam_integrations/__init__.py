"""KBLaM (knowledge-base augmented language models) for LangChain and LlamaIndex.

Heavy modules (torch, transformers, spaCy) are imported lazily on first use.
"""

from __future__ import annotations

from ._optional import lazy_getattr as _lazy_getattr
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


__getattr__ = _lazy_getattr(__name__, _LAZY)


__all__ = [
    "CacheMismatchError", "ConfigError", "DuplicateTripleError", "KBChange", "KBFormatError", "KBLaMError",
    "KBValidationError", "KnowledgeBase", "ModelNotFoundError", "Triple", "TripleNotFoundError", *_LAZY,
]
