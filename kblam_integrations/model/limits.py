"""Limits checked up front, so that an input too big for the model or the machine fails in
milliseconds with a typed error instead of running for minutes (holding the model lock)
and then producing degraded output or dying of OOM.

Kept free of heavy imports (torch only): the KB manager uses the memory check, the
model its prompt and sampling checks.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch

from ..errors import ConfigError, InsufficientMemoryError, PromptTooLongError

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


def available_memory(device: torch.device | str | None = None) -> int:
    """Bytes that can be allocated now on ``device``: free GPU memory (plus what torch's
    caching allocator holds free) for CUDA, available system RAM otherwise."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    if device.type == "cuda" and torch.cuda.is_available():
        free, _total = torch.cuda.mem_get_info(device)
        reserved = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(free + max(0, reserved))
    import psutil

    return int(psutil.virtual_memory().available)


def check_memory(needed: int, device: torch.device | str | None = None, *, what: str = "this operation") -> None:
    """Raise :class:`InsufficientMemoryError` before allocating ``needed`` bytes that do not fit.

    Better a one-line error naming the size now than an OOM kill (or a swapping machine)
    half-way through encoding a million triples.
    """
    available = available_memory(device)
    if needed > available:
        raise InsufficientMemoryError(
            f"{what} needs about {_gib(needed)} but only {_gib(available)} is available on "
            f"{torch.device(device) if device is not None else 'cpu'}; use a smaller KB, fp16 tokens or a "
            f"machine with more memory", needed=needed, available=available)


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**28 else f"{n / 2**20:.1f} MiB"
