"""The two answer modes, named once: every entry point (model, wrappers, CLI, demo) checks against these."""

from __future__ import annotations

from typing import Literal

from ..errors import ConfigError

AnswerMode = Literal["kblam", "grounded"]
ANSWER_MODES: tuple[str, ...] = ("kblam", "grounded")


def check_mode(mode: object) -> str:
    """``mode`` if it is one of :data:`ANSWER_MODES`, else a :class:`~..errors.ConfigError`."""
    if mode not in ANSWER_MODES:
        raise ConfigError(f"mode must be 'kblam' or 'grounded', got {mode!r}")
    return mode  # type: ignore[return-value]
