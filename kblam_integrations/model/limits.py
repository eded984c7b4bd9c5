"""Limits checked up front, so that an input too big for the model or the machine fails in
milliseconds with a typed error instead of running for minutes (holding the model lock)
and then producing degraded output or dying of OOM.

Kept free of heavy imports (torch only). The memory check lives in :mod:`kblam_integrations.memory`,
below the encoding layer that uses it.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch

from ..errors import ConfigError, PromptTooLongError
from ..memory import available_memory, check_memory  # noqa: F401 - re-exported

#: Backbone config attributes that hold the context window, in order of preference.
_CONTEXT_ATTRS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx")


def context_window(config: Any) -> int | None:
    """The backbone's context window in tokens (``max_position_embeddings`` and its aliases;
    for multimodal configs, the text config's), or None when the config does not say."""
    for cfg in (config, getattr(config, "text_config", None)):
        if cfg is None:
            continue
        for attr in _CONTEXT_ATTRS:
            value = getattr(cfg, attr, None)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return None


def check_prompt_length(ids: torch.Tensor | int, config: Any) -> None:
    """Raise :class:`PromptTooLongError` when a prompt leaves no room to generate.

    ``ids`` is the prompt's token ids (``[..., n]``) or its length; ``config`` the
    backbone's HF config. Called where the prompt is tokenised, before any forward:
    an over-long prompt would otherwise run at full quadratic cost past the positions
    the backbone was trained on and answer from garbage.
    """
    n = int(ids) if isinstance(ids, int) else int(ids.shape[-1])
    limit = context_window(config)
    if limit is not None and n >= limit:
        raise PromptTooLongError(
            f"the prompt is {n} tokens; the backbone's context window is {limit} tokens "
            f"(max_position_embeddings), which must also leave room for the answer: shorten the prompt",
            tokens=n, limit=limit)


def check_sampling(temperature: Any = 0.0, max_new_tokens: Any = None) -> None:
    """Per-call generation settings: ``temperature`` a finite number >= 0 (NaN would silently
    decode greedily, ``inf`` samples uniform gibberish), ``max_new_tokens`` a positive int."""
    if temperature is not None:
        if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) \
                or not math.isfinite(float(temperature)) or temperature < 0:
            raise ConfigError(f"temperature must be a finite number >= 0, got {temperature!r}")
    if max_new_tokens is not None:
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, numbers.Integral) or max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
