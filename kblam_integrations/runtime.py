"""Process-level runtime knobs shared by the demo, the CLI, the model loader and the benchmarks.

Torch's thread count and quiet model loading are set up the same way everywhere, so they
live below every layer that loads a model. torch and transformers are imported inside
the functions: importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings

logger = logging.getLogger(__name__)

__all__ = ["auto_threads", "configure_threads", "quiet_loading"]


def auto_threads() -> int:
    """A torch thread count that suits the machine *now*.

    On a machine whose cores are busy (shared CI runners, a training job next door),
    torch's default of one thread per core makes every thread wait for the slowest one;
    SmolLM2 then decodes several times slower than with a single thread. So: the number
    of idle cores (from the 1-minute load average), at least 1, at most torch's default.
    ``KBLAM_NUM_THREADS`` overrides the guess.
    """
    env = os.environ.get("KBLAM_NUM_THREADS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            logger.warning("ignoring KBLAM_NUM_THREADS=%r (not an integer)", env)
    cpus = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # not on every platform
        return cpus
    return max(1, min(cpus, int(cpus - load + 0.5)))


def configure_threads(threads: int | None = None) -> int:
    """Set torch's intra-op thread count (``None``: :func:`auto_threads`); returns it."""
    import torch

    n = threads if threads is not None else auto_threads()
    if n != torch.get_num_threads():
        torch.set_num_threads(n)
    return n


@contextlib.contextmanager
def quiet_loading():
    """Silence transformers' per-file progress bars and deprecation chatter while loading."""
    from transformers.utils import logging as hf_logging

    bars_were_disabled = hf_logging.is_progress_bar_enabled() is False
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        if not bars_were_disabled:
            hf_logging.enable_progress_bar()
