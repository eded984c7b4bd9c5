"""One cache for the trainer's precomputed tensors (embeddings, query features).

Each is a safetensors file under the run's ``cache/`` directory, written atomically
(:func:`~kblam_integrations.kb.atomic_files.atomic_write_with`), so an interrupted run
never leaves a half-written cache that a resumed run would trust.

In a data-parallel run (``torch.distributed`` initialised, e.g. by ``accelerate launch``)
only rank 0 computes and writes a missing cache; the other processes wait at a barrier,
then read rank 0's file: the work is done once and no two processes write the same file.
So every process must make the same ``cached_tensors`` calls in the same order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file, save_file

from ..kb.atomic_files import atomic_write_with


def cached_tensors(file: Path, compute: Callable[[], dict[str, torch.Tensor]],
                   valid: Callable[[dict[str, torch.Tensor]], bool] = lambda data: True) -> dict[str, torch.Tensor]:
    """The tensors stored in ``file`` if it exists and ``valid`` accepts them, else ``compute()``,
    stored there for next time."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return _load_or_compute(Path(file), compute, valid)
    if dist.get_rank() == 0:
        data = _load_or_compute(Path(file), compute, valid)
    dist.barrier()
    if dist.get_rank() != 0:
        data = _load_or_compute(Path(file), compute, valid)
    return data


def _load_or_compute(file: Path, compute, valid) -> dict[str, torch.Tensor]:
    if file.is_file():
        data = load_file(str(file))
        if valid(data):
            return data
    data = {name: t.contiguous() for name, t in compute().items()}
    file.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_with(file, lambda tmp: save_file(data, tmp))
    return data
