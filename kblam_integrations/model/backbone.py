"""Load the frozen backbone decoder (HF directory, HF id in the local cache, or GGUF).

GGUF files are dequantised once (~20 s for SmolLM2) and the converted model is cached
as safetensors under :func:`~kblam_integrations.settings.cache_dir`. Loaded backbones
are shared process-wide: two models over the same backbone reuse one copy.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from ..errors import ModelNotFoundError
from ..settings import ModelSource, cache_dir, resolve_backbone

_LOCK = threading.Lock()
_LOADED: dict[tuple[str, str], tuple[PreTrainedModel, PreTrainedTokenizerBase]] = {}


def _converted_dir(source: ModelSource) -> Path:
    gguf = source.path / source.gguf_file
    stat = gguf.stat()
    tag = hashlib.sha1(f"{gguf.resolve()}|{stat.st_size}|{int(stat.st_mtime)}".encode()).hexdigest()[:12]
    return cache_dir() / "backbones" / f"{gguf.stem}-{tag}"


def _convert_gguf(source: ModelSource) -> Path:
    target = _converted_dir(source)
    if (target / "config.json").is_file():
        return target
    model = AutoModelForCausalLM.from_pretrained(source.path, gguf_file=source.gguf_file, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(source.path, gguf_file=source.gguf_file)
    # The weights are dequantised already; drop the quantizer so save_pretrained accepts the model.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def load_backbone(
    spec: str | os.PathLike | None = None, *, dtype: torch.dtype = torch.float32, shared: bool = True
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Return ``(model, tokenizer)`` for a backbone spec, frozen and in eval mode."""
    source = resolve_backbone(spec)
    key = (str(source.path / (source.gguf_file or "")), str(dtype))
    with _LOCK:
        if shared and key in _LOADED:
            return _LOADED[key]
        path = _convert_gguf(source) if source.gguf_file else source.path
        try:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
            tokenizer = AutoTokenizer.from_pretrained(path)
        except OSError as exc:
            raise ModelNotFoundError(f"cannot load backbone {source.name!r} from {str(path)!r}: {exc}") from exc
        model.eval().requires_grad_(False)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        if shared:
            _LOADED[key] = (model, tokenizer)
        return model, tokenizer
