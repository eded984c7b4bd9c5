"""Memory available on a device, checked before a big allocation (a typed error, not an OOM kill)."""

from __future__ import annotations

import torch

from .errors import InsufficientMemoryError


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
