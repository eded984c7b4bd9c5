"""A triple's value as the frozen backbone's own key/value states of its fact sentence.

Each triple is run through the backbone alone (positions ``0..m-1``), so its states
depend on nothing but the triple: they can be computed once, cached, and dropped with
the triple. Only the states of the few triples that the key attention selects are
ever computed at question time, so memory does not grow with the KB (an LRU keeps the
recent ones). See :mod:`..attention.value_blocks` for how they are attended.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Sequence

import torch

from ..kb.triple import Triple


class TripleStates:
    """``keys``/``values``: ``[layers, KVH, m, D]`` fp32 states of one triple's text (keys rotated for 0..m-1)."""

    __slots__ = ("keys", "values")

    def __init__(self, keys: torch.Tensor, values: torch.Tensor):
        self.keys, self.values = keys, values

    @property
    def length(self) -> int:
        return int(self.keys.shape[2])

    @property
    def nbytes(self) -> int:
        return self.keys.numel() * self.keys.element_size() * 2


class ValueStateEncoder:
    """Backbone states of ``text_of(triple)``, batched, with an LRU cache of ``capacity`` triples."""

    def __init__(self, backbone: torch.nn.Module, tokenizer, text_of: Callable[[Triple], str], *,
                 capacity: int = 4096, batch_size: int = 16):
        self.backbone, self.tokenizer, self.text_of = backbone, tokenizer, text_of
        self.capacity, self.batch_size = capacity, batch_size
        self._cache: OrderedDict[str, TripleStates] = OrderedDict()
        self._lock = threading.Lock()
        self.computed = 0  # texts run through the backbone (cache misses)

    @torch.no_grad()
    def _compute(self, texts: Sequence[str]) -> list[TripleStates]:
        device = next(self.backbone.parameters()).device
        enc = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        pad = self.tokenizer.pad_token_id or 0
        width = max(len(x) for x in enc)
        ids = torch.full((len(enc), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, x in enumerate(enc):  # right padding: real tokens keep positions 0..m-1
            ids[i, : len(x)] = torch.tensor(x)
            mask[i, : len(x)] = 1
        from ..attention.context import use_kb

        with use_kb(None):
            out = self.backbone(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=True)
        cache = getattr(out, "cache", None) or out.past_key_values
        keys = torch.stack([layer.keys for layer in cache.layers], dim=1)  # [B, L, KVH, W, D]
        values = torch.stack([layer.values for layer in cache.layers], dim=1)
        self.computed += len(texts)
        return [TripleStates(keys[i, :, :, : len(x)].float().cpu().clone(), values[i, :, :, : len(x)].float().cpu().clone())
                for i, x in enumerate(enc)]

    def states(self, triples: Sequence[Triple]) -> list[TripleStates]:
        texts = [self.text_of(t) for t in triples]
        with self._lock:
            missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
            for lo in range(0, len(missing), self.batch_size):
                chunk = missing[lo:lo + self.batch_size]
                for text, st in zip(chunk, self._compute(chunk)):
                    self._cache[text] = st
            found = []
            for t in texts:
                self._cache.move_to_end(t)
                found.append(self._cache[t])
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
        return found
