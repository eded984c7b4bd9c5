"""Options several commands share, declared once, and the checks of their values."""

from __future__ import annotations

from enum import Enum
from typing import Any

import typer

from ..errors import ConfigError
from ..model.modes import ANSWER_MODES
from ..model.modes import check_mode as check_answer_mode
from .boundary import CLIError

__all__ = ["BACKBONE_OPT", "ENCODER_OPT", "MODE_OPT", "WEIGHTS_OPT", "Mode", "check_mode", "check_positive"]


Mode = Enum("Mode", {m: m for m in ANSWER_MODES}, type=str)  # the model's answer modes as a typer choice


WEIGHTS_OPT = typer.Option(None, "--weights", help="KBLaM checkpoint directory (default: the shipped weights; "
                                                   "an untrained model with a warning if there are none).")
BACKBONE_OPT = typer.Option(None, "--backbone", help="Backbone: HF id in the local cache, directory or .gguf file.")
ENCODER_OPT = typer.Option(None, "--encoder", help="Sentence encoder: HF id in the local cache or directory.")
MODE_OPT = typer.Option(Mode.grounded, "--mode", help="kblam: pure KBLaM attention; grounded: attention picks the "
                                                    "top triples, whose text then grounds the answer.")


def check_mode(mode: Any) -> str:
    value = mode.value if isinstance(mode, Enum) else str(mode)
    try:
        return check_answer_mode(value)
    except ConfigError as exc:
        raise CLIError(str(exc)) from exc


def check_positive(value: int, name: str) -> int:
    if value is None or value <= 0:
        raise CLIError(f"{name} must be a positive integer, got {value}")
    return value
