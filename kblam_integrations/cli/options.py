"""Options several commands share, declared once, and the checks of their values."""

from __future__ import annotations

from enum import Enum
from typing import Any

import typer

from .boundary import CLIError

__all__ = ["BACKBONE_OPT", "ENCODER_OPT", "MODE_OPT", "WEIGHTS_OPT", "Mode", "check_mode", "check_positive"]


class Mode(str, Enum):
    kblam = "kblam"
    grounded = "grounded"


WEIGHTS_OPT = typer.Option(None, "--weights", help="KBLaM checkpoint directory (default: the shipped weights; "
                                                   "an untrained model with a warning if there are none).")
BACKBONE_OPT = typer.Option(None, "--backbone", help="Backbone: HF id in the local cache, directory or .gguf file.")
ENCODER_OPT = typer.Option(None, "--encoder", help="Sentence encoder: HF id in the local cache or directory.")
MODE_OPT = typer.Option(Mode.grounded, "--mode", help="kblam: pure KBLaM attention; grounded: attention picks the "
                                                    "top triples, whose text then grounds the answer.")


def check_mode(mode: Any) -> str:
    value = mode.value if isinstance(mode, Enum) else str(mode)
    if value not in ("kblam", "grounded"):
        raise CLIError(f"unknown mode {value!r}; use 'kblam' or 'grounded'")
    return value


def check_positive(value: int, name: str) -> int:
    if value is None or value <= 0:
        raise CLIError(f"{name} must be a positive integer, got {value}")
    return value
