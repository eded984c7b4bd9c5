"""``KBEncoder``: triples -> knowledge tokens (sentence encoder + adapters)."""

from __future__ import annotations

import hashlib
import json
from typing import Sequence

import torch

from ..kb.triple import Triple
from .adapters import KnowledgeAdapters
from .key_index import key_norm_metric, key_projections
from .tokens import absent_values, empty_tokens

_PROGRESS_THRESHOLD = 2048
# Triples encoded per block: the sentence encoder sees 2 x this many texts per call and
# the fp32 adapter outputs of a block are ~2 x ENCODE_BLOCK x layers x kb_dim x 4 bytes.
ENCODE_BLOCK = 512


class KBEncoder:
    """Encode triples into per-layer knowledge-token keys and values.

    ``encode`` embeds key texts ("the {property} of {name}") and value texts with the
    frozen sentence encoder in batches, then applies the adapters. Tokens are returned
    in ``dtype`` (fp16 by default: half the memory, no measurable change in scores).
    ``triples_encoded`` counts every triple ever encoded, so callers can verify that
    updates re-encode only what changed.
    """

    def __init__(self, sentence_encoder, adapters: KnowledgeAdapters, *, encoder_name: str = "custom",
                 batch_size: int = 256):
        self.sentence_encoder = sentence_encoder
        self.adapters = adapters
        self.encoder_name = encoder_name
        self.batch_size = batch_size
        self.triples_encoded = 0

    def embed(self, texts: Sequence[str], show_progress: bool | None = None) -> torch.Tensor:
        """Sentence embeddings ``[len(texts), encoder_dim]`` (fp32)."""
        if not texts:
            return torch.zeros(0, self.adapters.encoder_dim)
        progress = len(texts) >= _PROGRESS_THRESHOLD if show_progress is None else show_progress
        with torch.no_grad():
            emb = self.sentence_encoder.encode(
                list(texts), batch_size=self.batch_size, convert_to_tensor=True, show_progress_bar=progress,
            )
        return emb.float().cpu()

    def embed_triples(self, triples: Sequence[Triple], show_progress: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Key and value sentence embeddings of ``triples`` (one encoder pass over both texts)."""
        texts = [t.key_text for t in triples] + [t.value_text for t in triples]
        emb = self.embed(texts, show_progress)
        n = len(triples)
        return emb[:n], emb[n:]

    def encode(self, triples: Sequence[Triple], *, dtype: torch.dtype = torch.float16,
               show_progress: bool | None = None, block_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Knowledge tokens ``(keys, values)``; see :meth:`encode_with_key_embeddings`."""
        keys, values, _ = self.encode_with_key_embeddings(triples, dtype=dtype, show_progress=show_progress,
                                                          block_size=block_size)
        return keys, values

    def encode_with_key_embeddings(self, triples: Sequence[Triple], *, dtype: torch.dtype = torch.float16,
                                   show_progress: bool | None = None, block_size: int | None = None,
                                   values: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Knowledge tokens ``(keys, values)``, each ``[N, num_kb_layers, kb_dim]`` in ``dtype``, and the
        key sentence embeddings ``[N, encoder_dim]`` they came from (what a key index searches).

        Memory: the result is allocated once, layer-major (see
        :func:`~kblam_integrations.encoding.tokens.empty_tokens`), and filled ``block_size``
        triples at a time (default :data:`ENCODE_BLOCK`): the fp32 sentence embeddings and
        adapter outputs only ever exist for one block, never for the whole KB.
        ``values=False`` (a model that never reads value tokens): value texts are not embedded and
        the values are :func:`~.tokens.absent_values`, half the time and half the memory.
        """
        n = len(triples)
        block = max(1, block_size or ENCODE_BLOCK)
        layers, dim = self.adapters.num_kb_layers, self.adapters.kb_dim
        device = self.adapters.key.weight.device
        keys = empty_tokens(n, layers, dim, dtype=dtype, device=device)
        value_tokens = (empty_tokens(n, layers, dim, dtype=dtype, device=device) if values
                        else absent_values(n, layers, dim, dtype=dtype, device=device))
        key_embeddings = torch.empty(n, self.adapters.encoder_dim, dtype=dtype, device=device)
        progress = n >= _PROGRESS_THRESHOLD if show_progress is None else show_progress
        starts = range(0, n, block)
        if progress and n > block:
            from tqdm.auto import tqdm

            starts = tqdm(starts, total=-(-n // block), desc="encoding KB", unit="block")
        for lo in starts:
            hi = min(n, lo + block)
            if values:
                key_emb, value_emb = self.embed_triples(triples[lo:hi], progress and n <= block)
            else:
                key_emb = self.embed([t.key_text for t in triples[lo:hi]], progress and n <= block)
            with torch.no_grad():  # the copies cast to ``dtype``
                if values:
                    keys[lo:hi], value_tokens[lo:hi] = self.adapters(key_emb.to(device), value_emb.to(device))
                else:
                    keys[lo:hi] = self.adapters.keys(key_emb.to(device))
            key_embeddings[lo:hi] = key_emb
        self.triples_encoded += n
        return keys, value_tokens, key_embeddings

    def key_projections(self) -> torch.Tensor:
        """``[layers, kb_dim, E]`` each KB layer's centred key map (see :mod:`.key_index`)."""
        a = self.adapters
        return key_projections(a.key.weight, a.num_kb_layers, a.kb_dim)

    def index_metric(self) -> torch.Tensor:
        """The key adapter's ``[E, E]`` norm metric a :class:`~.key_index.KeyIndex` stores its vectors under."""
        return key_norm_metric(self.key_projections())

    @property
    def fingerprint(self) -> str:
        """Identifies adapters + sentence encoder by their WEIGHTS and config, not their names.

        An encoded-KB cache is valid only for the same fingerprint. It covers the
        encoder name, the adapters' shape settings and every parameter and buffer, and
        for a ``torch.nn.Module`` sentence encoder (sentence-transformers is one) its
        module structure, HF configs and every parameter and buffer too; a stand-in
        that is not a module contributes its type and embedding size. Hashing MiniLM
        takes ~0.1 s, so the value is cached until a weight changes (in place or by
        reassignment: keyed on each tensor's identity and version counter).
        """
        key = self._weights_key()
        cached = getattr(self, "_fingerprint_cache", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        h = hashlib.sha256(b"kblam-encoder-fingerprint/2\0")
        h.update(self.encoder_name.encode())
        a = self.adapters
        h.update(repr((a.encoder_dim, a.kb_dim, a.num_kb_layers, a.use_null_token)).encode())
        _hash_state(h, a)
        enc = self.sentence_encoder
        h.update(f"{type(enc).__module__}.{type(enc).__qualname__}".encode())
        if isinstance(enc, torch.nn.Module):
            h.update(_module_structure(enc).encode())
            _hash_state(h, enc)
        else:
            dim = getattr(enc, "get_sentence_embedding_dimension", None)
            h.update(str(dim() if callable(dim) else None).encode())
            own = getattr(enc, "fingerprint", None)
            if isinstance(own, str):
                h.update(own.encode())
        value = h.hexdigest()[:32]
        self._fingerprint_cache = (key, value)
        return value

    def _weights_key(self) -> tuple:
        modules = [self.adapters] + ([self.sentence_encoder] if isinstance(self.sentence_encoder, torch.nn.Module)
                                     else [])
        return (self.encoder_name, id(self.sentence_encoder), id(self.adapters),
                tuple((id(t), t._version) for m in modules for t in (*m.parameters(), *m.buffers())))


def _hash_state(h, module: torch.nn.Module) -> None:
    """Names, dtypes, shapes and raw bytes of every parameter and buffer."""
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}|{t.dtype}|{tuple(tensor.shape)}".encode())
        if t.numel():
            h.update(t.view(torch.uint8).numpy())


def _module_structure(module: torch.nn.Module) -> str:
    """The module tree (``repr``: sentence-transformers prints pooling/normalisation settings)
    plus the HF configs of its submodules, minus machine-specific fields such as paths."""
    parts = [repr(module)]
    for name, sub in module.named_modules():
        cfg = getattr(sub, "config", None)
        if cfg is not None and hasattr(cfg, "to_dict"):
            try:
                d = {k: v for k, v in cfg.to_dict().items() if not k.startswith("_") and k != "transformers_version"}
                parts.append(f"{name}:{json.dumps(d, sort_keys=True, default=str)}")
            except Exception:  # noqa: BLE001 - an exotic config: its weights are still hashed
                parts.append(f"{name}:{type(cfg).__name__}")
    return "\n".join(parts)
