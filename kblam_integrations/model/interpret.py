"""Reading KBLaM's attention: which triples an answer used."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch

from .kblam_model import GenerationResult, TripleScore


def top_k_triples(result: GenerationResult, k: int = 5) -> list[TripleScore]:
    """The ``k`` triples with the highest attention mass, best first."""
    return result.top_k(k)


def attention_matrix(result: GenerationResult, triples: Sequence[int] | None = None) -> tuple[list[int], torch.Tensor]:
    """``(layers, [n_layers, n_triples])`` attention mass per KB layer and triple."""
    if not result.layer_scores:
        return [], torch.zeros(0, 0)
    layers = sorted(result.layer_scores)
    n = len(result.triples)
    mat = torch.stack([result.layer_scores[l][:n] for l in layers])
    if triples is not None:
        mat = mat[:, list(triples)]
    return layers, mat


def plot_attention_heatmap(result: GenerationResult, path: str | os.PathLike | None = None, *, max_triples: int = 20,
                           title: str | None = None):
    """Heatmap of attention mass (KB layers x the most-attended triples); saved to ``path`` if given.

    Returns the matplotlib Figure.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    top = result.top_k(max_triples)
    index = {id(t): i for i, t in enumerate(result.triples)}
    cols = [index[id(s.triple)] for s in top]
    layers, mat = attention_matrix(result, cols)
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(cols) + 3), max(3, 0.35 * len(layers) + 1.5)))
    im = ax.imshow(mat.numpy() if mat.numel() else [[0.0]], aspect="auto", cmap="viridis")
    ax.set_yticks(range(len(layers)), [f"layer {l}" for l in layers])
    labels = [f"{s.triple.name} · {s.triple.property}"[:40] for s in top]
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_title(title or "KB attention mass per layer")
    fig.colorbar(im, ax=ax, label="attention mass")
    fig.tight_layout()
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    plt.close(fig)
    return fig
