"""Loading the model for a command (tests replace :func:`load_model` with a tiny model)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from .inputs import check_weights
from .output import console_for

__all__ = ["load_model"]


def load_model(weights: Optional[Path], backbone: Optional[str], encoder: Optional[str], console=None):
    """The model: ``--weights``, else the shipped weights, else an untrained one with a warning."""
    import warnings

    from ..demo import load_model as load_with_warning
    from ..runtime import configure_threads

    check_weights(weights)
    configure_threads(None)
    console = console or console_for(stderr=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with console.status("Loading model (offline)..."):
            model, _trained = load_with_warning(weights, backbone=backbone, encoder=encoder, console=console)
    return model
