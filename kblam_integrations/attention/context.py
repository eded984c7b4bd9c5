"""Per-call state handed to the attention function: which knowledge tokens to use, what to record.

A :class:`contextvars.ContextVar` carries it, so concurrent calls (threads, asyncio
tasks) each see their own KB snapshot, and ``generate()`` needs no extra arguments:
the knowledge tokens are supplied to every decoding step and never enter the KV cache.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator, Mapping

import torch

if TYPE_CHECKING:
    from .indexed_scoring import CandidateSearch, IndexedRetrieval
    from .sharded import KBShard
    from .value_blocks import ValueBlocks


@dataclass
class KBAttentionRecord:
    """What one KB layer saw during a call.

    ``mass_sum[b, n]`` sums, over every forward in the call, the attention probability
    that knowledge token ``n`` received (averaged over heads) at the *last* query
    position, i.e. at each position that predicts a generated token (the end of the
    prompt, then every decoding step); ``rows[b]`` counts those forwards. ``logits`` (only when asked for, used
    by training) keeps the raw KB scores ``[B, H, q, N]`` of the latest forward.
    """

    mass_sum: torch.Tensor | None = None
    rows: torch.Tensor | None = None
    last_probs: torch.Tensor | None = None
    logits: torch.Tensor | None = None

    def mean_mass(self) -> torch.Tensor:
        assert self.mass_sum is not None and self.rows is not None
        return self.mass_sum / self.rows.clamp_min(1).unsqueeze(-1)


@dataclass
class KBContext:
    """Knowledge tokens for one call.

    keys/values: ``[N, n_kb_layers, H * head_dim]``, the KB's own tensors (never copied:
    each layer reads its strided slice ``keys[:, j]`` in place). ``null_keys`` /
    ``null_values``: ``[n_kb_layers, H * head_dim]``, the learned null token, kept apart
    so that adding it costs no copy of the KB; it is the last KB column of every score,
    record and logits matrix. ``kb_len`` is the number of real triples, used for the
    ``log(scale) - log(kb_len)`` shift. ``layer_map`` maps a decoder layer index to its slice ``j``.
    """

    keys: torch.Tensor
    values: torch.Tensor
    layer_map: dict[int, int]
    query_projections: "Mapping[int, torch.nn.Module]"
    kb_len: int
    kb_scale_factor: float | None = None
    chunk_size: int = 4096
    top_k: int | None = None
    record: bool = False
    keep_logits: bool = False
    # Training: compute KB queries from detached hidden states (no backprop into the backbone).
    detach_query_input: bool = False
    # Retrieval pass: record KB retrieval probabilities (last prompt row) but leave every
    # attention output exactly the backbone's (see :mod:`.scoring`).
    scores_only: bool = False
    records: dict[int, KBAttentionRecord] = field(default_factory=dict)
    # KB query states per layer, filled by the pre-attention hook of each KB layer.
    kb_queries: dict[int, torch.Tensor] = field(default_factory=dict)
    null_keys: torch.Tensor | None = None
    null_values: torch.Tensor | None = None
    # Retrieval pass: ``[B, q]`` weight of each prompt row in the prompt-averaged KB query
    # (None: all rows alike); a conversation weighs its earlier turns less than the last one.
    row_weights: torch.Tensor | None = None
    # Pure mode's values: the selected triples' own backbone states (see :mod:`.value_blocks`).
    value_blocks: "ValueBlocks | None" = None
    # Retrieval pass over a large KB: an index proposes candidate rows per KB layer instead of
    # a scan of every key (see :mod:`.indexed_scoring`).
    key_search: "CandidateSearch | None" = None
    indexed: "IndexedRetrieval | None" = None  # the forward in progress over the index
    # KB split across processes: keys/values are this rank's shard (see :mod:`.sharded`).
    shard: "KBShard | None" = None

    @property
    def num_tokens(self) -> int:
        """KB columns: knowledge tokens + the null token (if any)."""
        n = self.shard.kb_len if self.shard is not None else int(self.keys.shape[0])
        return n + (self.null_keys is not None)

    @property
    def score_shift(self) -> float:
        if self.kb_scale_factor is None:
            return 0.0
        kb_len = self.shard.kb_len if self.shard is not None else self.kb_len
        return math.log(self.kb_scale_factor) - math.log(max(kb_len, 1))


_ACTIVE: contextvars.ContextVar[KBContext | None] = contextvars.ContextVar("kblam_active_kb", default=None)


def active_kb() -> KBContext | None:
    """The KB of the current call, or None (then the model is exactly the base model)."""
    return _ACTIVE.get()


@contextlib.contextmanager
def use_kb(ctx: KBContext | None) -> Iterator[KBContext | None]:
    """Run forwards / ``generate()`` with these knowledge tokens."""
    token = _ACTIVE.set(ctx)
    try:
        yield ctx
    finally:
        _ACTIVE.reset(token)
