"""``KBLaMConfig``: everything needed to rebuild a KBLaM model around its backbone."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import ConfigError

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant. Answer the question using your knowledge base."
REFUSAL = "I'm sorry, I cannot find that information in the knowledge base."


@dataclass
class KBLaMConfig:
    """Configuration of the KB-specific parts; the backbone and encoder are named, not stored.

    ``kb_layer_frequency``: every k-th decoder layer (``layer_idx % k == 0``) is a KB layer.
    ``kb_scale_factor``: KB scores are shifted by ``log(kb_scale_factor) - log(kb_len)``
    so attention mass on the KB stays stable as it grows (None disables the shift).
    ``refusal_ratio``: grounded mode refuses when the null token's attention exceeds
    ``refusal_ratio`` x the best triple's (calibrated after training, on the train split).
    ``refusal_classifier``: a logistic model that decides refusals from the KB attention
    and, for its "agreement" feature sets, question-key agreement (see :mod:`.refusal`);
    fitted after retrieval training. When None, the ``refusal_ratio`` rule is used.
    ``grounded_rerank``: grounded mode orders the attention's top candidates by
    question-key agreement before putting the first ``grounded_k`` in the prompt.
    ``inject_values``: False when the value adapter was never trained (no LM phase); it only
    matters with ``value_source="adapter"`` (the paper's one value vector per triple). With
    ``value_source="states"`` pure mode reads the selected triples' own backbone states
    (:mod:`..attention.value_blocks`), which need no trained value adapter.
    ``grounded_answer_prefix``: in grounded mode, start the answer with the best triple's key
    phrase ("The founder of X is"), so that a small backbone copies the value exactly.
    ``retrieval_layers``: KB layers whose attention is used as the retrieval score
    (None: the upper half of the KB layers, whose queries have read the question).
    """

    backbone: str = "smollm2"
    encoder: str = "all-MiniLM-L6-v2"
    num_hidden_layers: int = 30
    hidden_size: int = 576
    num_attention_heads: int = 9
    head_dim: int = 64
    encoder_dim: int = 384
    kb_layer_frequency: int = 3
    kb_scale_factor: float | None = 100.0
    use_null_token: bool = True
    retrieval_layers: list[int] | None = None
    chunk_size: int = 4096
    top_k_kb: int | None = None
    refusal_ratio: float = 1.0
    grounded_answer_prefix: bool = True
    # grounded mode: order the attention's top candidates by question-key agreement
    grounded_rerank: bool = True
    inject_values: bool = True
    # weight of earlier conversation turns in the KB query (the last user turn and the
    # system prompt weigh 1): the query reads the history, the current question leads
    history_weight: float = 0.5
    # two-fact questions: a reranked candidate whose key agrees with the question within this
    # margin of the best one is asked too (None: one fact per answer); at most max_facts
    extra_fact_margin: float | None = 0.08
    max_facts: int = 2
    # a turn the KB cannot answer: "refuse" it, or "answer" it with the backbone alone when it
    # is not about the KB (best question-key agreement below kb_turn_agreement: greetings, tasks)
    non_kb_turns: str = "answer"
    kb_turn_agreement: float = 0.25
    # pure mode's values: "states" (the selected triples' own backbone states, see
    # attention/value_blocks.py) or "adapter" (the paper's one value vector per triple)
    value_source: str = "states"
    # layers whose attention reads the value blocks (None: every decoder layer)
    value_layers: list[int] | None = None
    # added to every value-block score: > 0 makes the answer lean on the KB over the prompt
    value_bias: float = 2.0
    # the text whose states are a triple's value block: "fact" (its sentence) or "value"
    value_text: str = "fact"
    # KBs of at least kb_index_min_size triples get a key index of this kind ("ivf", "flat";
    # None: always scan every key): the retrieval pass scores the index's candidates exactly
    # (see encoding/key_index.py and attention/indexed_scoring.py)
    kb_index: str | None = "ivf"
    kb_index_min_size: int = 10000
    kb_index_candidates: int = 32
    # also search each KB layer's own query (kb_index_candidates each), not only their sum (4x)
    kb_index_layer_queries: bool = True
    kb_index_nprobe: int = 128
    kb_index_tail_sample: int = 1024
    refusal_classifier: dict[str, Any] | None = None
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    refusal: str = REFUSAL
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("num_hidden_layers", "hidden_size", "num_attention_heads", "head_dim", "encoder_dim",
                     "kb_layer_frequency", "chunk_size", "kb_index_min_size", "kb_index_candidates",
                     "kb_index_nprobe", "kb_index_tail_sample"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if self.kb_scale_factor is not None and not self.kb_scale_factor > 0:
            raise ConfigError(f"kb_scale_factor must be positive or None, got {self.kb_scale_factor!r}")
        if self.top_k_kb is not None and (not isinstance(self.top_k_kb, int) or self.top_k_kb <= 0):
            raise ConfigError(f"top_k_kb must be a positive integer or None, got {self.top_k_kb!r}")
        if isinstance(self.history_weight, bool) or not isinstance(self.history_weight, (int, float)) \
                or not 0.0 <= self.history_weight <= 1.0:
            raise ConfigError(f"history_weight must be a number in [0, 1], got {self.history_weight!r}")
        if self.non_kb_turns not in ("answer", "refuse"):
            raise ConfigError(f"non_kb_turns must be 'answer' or 'refuse', got {self.non_kb_turns!r}")
        if self.value_source not in ("states", "adapter"):
            raise ConfigError(f"value_source must be 'states' or 'adapter', got {self.value_source!r}")
        if self.kb_index is not None and self.kb_index not in ("ivf", "flat"):
            raise ConfigError(f"kb_index must be 'ivf', 'flat' or None, got {self.kb_index!r}")
        if self.value_text not in ("fact", "value"):
            raise ConfigError(f"value_text must be 'fact' or 'value', got {self.value_text!r}")
        if self.value_layers is not None:
            bad = [l for l in self.value_layers if not 0 <= l < self.num_hidden_layers]
            if bad:
                raise ConfigError(f"value_layers {bad} are not layers of a {self.num_hidden_layers}-layer backbone")
        if self.retrieval_layers is not None:
            bad = [l for l in self.retrieval_layers if l not in self.kb_layers]
            if bad:
                raise ConfigError(f"retrieval_layers {bad} are not KB layers {self.kb_layers}")

    @property
    def kb_layers(self) -> list[int]:
        return [i for i in range(self.num_hidden_layers) if i % self.kb_layer_frequency == 0]

    @property
    def kb_dim(self) -> int:
        return self.num_attention_heads * self.head_dim

    @property
    def score_layers(self) -> list[int]:
        if self.retrieval_layers:
            return list(self.retrieval_layers)
        layers = self.kb_layers
        return layers[len(layers) // 2:]

    @classmethod
    def for_backbone(cls, backbone_config: Any, *, backbone: str, encoder: str, encoder_dim: int, **overrides: Any) -> "KBLaMConfig":
        """Derive the shape fields from a transformers config (see :func:`.families.backbone_shape`)."""
        from .families import backbone_shape

        return cls(backbone=backbone, encoder=encoder, encoder_dim=encoder_dim, **backbone_shape(backbone_config),
                   **overrides)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "KBLaMConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown KBLaM config fields: {unknown}")
        return cls(**data)

    def save(self, path: str | os.PathLike) -> None:
        from ..kb.atomic_files import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "KBLaMConfig":
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read KBLaM config {str(path)!r}: {exc}") from exc
        return cls.from_dict(data)
