"""Optional dependencies: import them with an error that names the extra to install.

The core package needs torch, transformers and sentence-transformers only; the
framework integrations, spaCy extraction and plots live behind extras::

    pip install "kblam-integrations[langchain]"   # langchain-core
    pip install "kblam-integrations[llamaindex]"  # llama-index-core
    pip install "kblam-integrations[extract]"     # spaCy
    pip install "kblam-integrations[plots]"       # matplotlib
    pip install "kblam-integrations[all]"         # everything
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, Callable, Mapping

from .errors import KBLaMError

__all__ = ["MissingDependencyError", "lazy_getattr", "require"]

#: The distribution that provides each optional top-level module.
_DISTRIBUTIONS = {
    "langchain_core": "langchain-core",
    "llama_index": "llama-index-core",
    "spacy": "spacy",
    "matplotlib": "matplotlib",
    "langchain_text_splitters": "langchain-text-splitters",
}


class MissingDependencyError(KBLaMError, ImportError):
    """An optional dependency is not installed; the message names the extra that provides it."""


def require(module: str, *, extra: str, feature: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming ``pip install "kblam-integrations[extra]"``.

    Only a missing ``module`` itself is reported that way; an import error inside an
    installed package propagates unchanged (it is a real bug, not a missing extra).
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        top = module.split(".")[0]
        if exc.name is not None and exc.name.split(".")[0] != top:
            raise
        dist = _DISTRIBUTIONS.get(top, top)
        what = feature or f"this part of kblam-integrations ({module})"
        raise MissingDependencyError(
            f"{what} needs {dist!r}, which is not installed; install it with "
            f"`pip install \"kblam-integrations[{extra}]\"`") from exc


def lazy_getattr(package: str, lazy: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports each name of ``lazy`` (name ->
    module that defines it) on first use, so heavy or optional modules load only when asked for."""
    def __getattr__(name: str) -> Any:
        if name in lazy:
            return getattr(importlib.import_module(lazy[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
