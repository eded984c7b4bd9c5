"""The one loader of "the shipped weights, else a seeded untrained model".

The demo, the CLI, the framework wrappers' model cache and the benchmarks all fall back
to an untrained :class:`KBLaMModel` while no trained adapters are shipped. The fallback is
seeded so that every process builds the same adapters (an encoded-KB cache written by
``kblam encode`` stays valid for the next ``kblam ask``), and the seed is applied to a
forked RNG so that loading a model never changes the caller's random stream.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .kblam_model import KBLaMModel

__all__ = ["UNTRAINED_SEED", "load_weights", "shipped_weights_available", "untrained_model"]

UNTRAINED_SEED = 0


def shipped_weights_available() -> bool:
    """Whether the shipped checkpoint for the default stack is installed."""
    from . import kblam_model

    return (kblam_model.DEFAULT_WEIGHTS_DIR / kblam_model.CONFIG_NAME).is_file()


def untrained_model(backbone: str | None = None, encoder: str | None = None) -> "KBLaMModel":
    """``KBLaMModel.from_backbone`` with adapters drawn from :data:`UNTRAINED_SEED`.

    Only a forked copy of the CPU generator is seeded (the model is built on the CPU), so
    torch's global RNG state is the same afterwards as before.
    """
    import torch

    from .kblam_model import KBLaMModel

    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(UNTRAINED_SEED)
        return KBLaMModel.from_backbone(backbone, encoder)


def load_weights(weights: str | os.PathLike | None = None, *, backbone: str | None = None,
                 encoder: str | None = None) -> "tuple[KBLaMModel, bool]":
    """``(model, trained)``: the checkpoint ``weights`` (it must exist), else the shipped weights,
    else (none installed) :func:`untrained_model` with ``trained=False``.

    ``backbone``/``encoder`` override the ones a checkpoint names, or choose the stack of the
    untrained model. Telling the user about the fallback is the caller's job.
    """
    from .kblam_model import KBLaMModel

    if weights is not None or shipped_weights_available():
        return KBLaMModel.from_pretrained(weights, backbone=backbone, encoder=encoder), True
    return untrained_model(backbone, encoder), False
