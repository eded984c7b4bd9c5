"""Framework integrations: LangChain (:class:`KBLaMLLM`) and LlamaIndex (:class:`KBLaMLlamaIndexLLM`,
:class:`KBLaMQueryEngine`).

Imported lazily so that using one framework never imports the other.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "KBLaMLLM": "kblam_integrations.integrations.langchain",
    "KBLaMSentenceEmbeddings": "kblam_integrations.integrations.langchain",
    "KBLaMLlamaIndexLLM": "kblam_integrations.integrations.llamaindex",
    "KBLaMQueryEngine": "kblam_integrations.integrations.llamaindex",
    "KBSource": "kblam_integrations.integrations.kb_source",
    "resolve_kb": "kblam_integrations.integrations.kb_source",
    "ModelSpec": "kblam_integrations.integrations.model_cache",
    "get_model": "kblam_integrations.integrations.model_cache",
    "clear_model_cache": "kblam_integrations.integrations.model_cache",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'kblam_integrations.integrations' has no attribute {name!r}")


__all__ = list(_LAZY)
