"""Files the commands read: KB files, encoded KB caches, checkpoints and extraction sources.

Everything is validated before any slow step (spaCy, the model), so a bad path costs nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import typer

from ..integrations.kb_source import ENCODED_KB_SUFFIX
from ..kb.loaders import DEFAULT_PATTERNS, iter_sources
from ..kb.persistence import KB_FILE_SUFFIXES
from .boundary import CLIError

__all__ = ["ENCODED_KB_SUFFIX", "check_kb_suffix", "check_weights", "existing_file", "kb_for_model", "load_kb",
           "load_kb_or_cache", "read_sources"]


def existing_file(path: Path, what: str = "file") -> Path:
    if not path.exists():
        raise CLIError(f"{what} not found: {path}")
    if path.is_dir():
        raise CLIError(f"{what} is a directory, not a file: {path}")
    return path


def check_kb_suffix(path: Path) -> None:
    if path.suffix.lower() not in KB_FILE_SUFFIXES:
        raise CLIError(f"unsupported KB file type {path.suffix or '(none)'!r} for {path}; "
                       f"use one of {', '.join(KB_FILE_SUFFIXES)}")


def load_kb(path: Path):
    from ..kb import KnowledgeBase

    existing_file(path, "KB file")
    check_kb_suffix(path)
    return KnowledgeBase.load(path)


def check_weights(weights: Optional[Path]) -> None:
    """A ``--weights`` directory must hold a KBLaM checkpoint config (checked before loading anything)."""
    if weights is None:
        return
    from ..model.kblam_model import CONFIG_NAME

    if not weights.is_dir():
        raise CLIError(f"KBLaM checkpoint directory not found: {weights}")
    existing_file(weights / CONFIG_NAME, "KBLaM checkpoint config")


def load_kb_or_cache(path: Path):
    """The KB of a KB file, or None for an encoded KB cache (.safetensors; read once the model is loaded)."""
    existing_file(path, "KB file")
    if path.suffix.lower() == ENCODED_KB_SUFFIX:
        return None
    return load_kb(path)


def kb_for_model(path: Path, model, kb=None):
    """A KBManager over ``kb``, or over the encoded cache at ``path`` (reused without re-encoding)."""
    if kb is None:
        return model.load_kb(path)
    return model.kb_manager(kb)


def read_sources(inputs: Sequence[str]) -> list[tuple[str, str]]:
    """``(name, text)`` for every input of ``kblam extract``: '-' (stdin), a file, a directory or text.

    Files, directories and the path-or-text rule are those of :func:`kblam_integrations.kb.loaders.iter_sources`.
    """
    from ..errors import KBFormatError

    sources: list[tuple[str, str]] = []
    for arg in inputs:
        if not arg.strip():  # Path("") is "." : an empty argument would ingest the working directory
            raise CLIError("empty input argument: pass text, a file, a directory or '-' (stdin)")
        if arg == "-":
            sources.append(("<stdin>", typer.get_text_stream("stdin").read()))
            continue
        try:
            found = list(iter_sources([arg], patterns=DEFAULT_PATTERNS))
        except KBFormatError:
            raise CLIError(f"file not found: {arg}") from None
        if not found:
            raise CLIError(f"no {' or '.join(DEFAULT_PATTERNS)} files in the directory {arg}")
        for name, _label, item in found:
            if isinstance(item, Path):
                sources.append((name, item.read_text(encoding="utf-8")))
            else:
                sources.append((f"<text {len(sources) + 1}>", item))
    return sources
