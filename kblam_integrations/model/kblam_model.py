"""``KBLaMModel``: a frozen HF causal LM that attends to knowledge tokens.

This module holds the model object and its KB plumbing (knowledge tokens -> attention
context); each other job lives in its own module and the methods here delegate to it:
:mod:`.checkpoint` (load/save), :mod:`.prompting`, :mod:`.retrieval`, :mod:`.generation`,
:mod:`.refusal` (the refusal policy) and :mod:`.families` (per-backbone-family facts).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from torch import nn

from ..attention.context import KBContext, use_kb
from ..attention.injection import inject_kb_attention
from ..encoding.adapters import KnowledgeAdapters
from ..encoding.kb_encoder import KBEncoder
from ..encoding.key_index import KeyIndex, KeySearch
from ..encoding.manager import KBManager, KBTokens
from ..encoding.value_states import ValueStateEncoder
from ..errors import ConfigError
from ..kb.knowledge_base import KnowledgeBase
from ..kb.triple import Triple
from . import checkpoint, generation, prompting, retrieval
from .checkpoint import CONFIG_NAME, DEFAULT_WEIGHTS_DIR, WEIGHTS_NAME
from .config import KBLaMConfig
from .families import family_of
from .grounding import fact_sentence
from .modes import AnswerMode, check_mode
from .prompting import Messages
from .refusal import RefusalClassifier, RefusalPolicy
from .results import GenerationResult, Retrieval, TripleScore

__all__ = ["CONFIG_NAME", "DEFAULT_WEIGHTS_DIR", "WEIGHTS_NAME", "GenerationResult", "KBLaMModel", "KBLike",
           "Messages", "Retrieval", "TripleScore"]

logger = logging.getLogger(__name__)

KBLike = KnowledgeBase | KBManager | KBTokens | Iterable[Triple | dict | tuple] | None


class KBLaMModel(nn.Module):
    """Backbone (``.backbone``) + :class:`KnowledgeAdapters` + per-KB-layer query heads + :class:`KBEncoder`."""

    def __init__(self, backbone: nn.Module, tokenizer: Any, config: KBLaMConfig, sentence_encoder: Any = None):
        super().__init__()
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.config = config
        self.adapters = KnowledgeAdapters(config.encoder_dim, config.kb_dim, len(config.kb_layers), config.use_null_token)
        family = family_of(backbone)
        modules = family.attention_modules(backbone)
        heads = {}
        for layer in config.kb_layers:
            w, b = family.query_weight(modules[layer], config.kb_dim)
            # always with a bias: retrieval training folds a feature standardisation into it
            lin = nn.Linear(w.shape[1], config.kb_dim, bias=True)
            with torch.no_grad():
                lin.weight.copy_(w)
                lin.bias.copy_(b if b is not None else torch.zeros(config.kb_dim))
            heads[str(layer)] = lin
        self.kb_queries = nn.ModuleDict(heads)
        inject_kb_attention(backbone, config.kb_layers, modules)
        self.encoder = KBEncoder(sentence_encoder, self.adapters, encoder_name=config.encoder)
        self._generate_lock = threading.Lock()
        self._value_states: ValueStateEncoder | None = None
        self._key_search: tuple[KBTokens, KeySearch] | None = None  # for the latest indexed snapshot
        self.to(next(backbone.parameters()).device)

    # ------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(cls, path: str | os.PathLike | None = None, *, backbone: str | None = None,
                        encoder: str | None = None, dtype: torch.dtype = torch.float32) -> "KBLaMModel":
        """Load a trained KBLaM model.

        With no ``path``, the shipped weights for the default stack (SmolLM2-135M-Instruct
        + all-MiniLM-L6-v2) are used. ``backbone``/``encoder`` override the ones named in
        the saved config (they must have the same shapes).
        """
        return checkpoint.load_checkpoint(cls, path, backbone=backbone, encoder=encoder, dtype=dtype)

    @classmethod
    def from_backbone(cls, backbone: str | None = None, encoder: str | None = None, *,
                      dtype: torch.dtype = torch.float32, **config_overrides: Any) -> "KBLaMModel":
        """A fresh (untrained) KBLaM model around any backbone + sentence encoder."""
        return checkpoint.untrained(cls, backbone, encoder, dtype=dtype, **config_overrides)

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Only what KBLaM trains: adapters and KB query heads."""
        sd = {f"adapters.{k}": v for k, v in self.adapters.state_dict().items()}
        sd.update({f"kb_queries.{k}": v for k, v in self.kb_queries.state_dict().items()})
        return sd

    def trainable_parameters(self) -> list[nn.Parameter]:
        return list(self.adapters.parameters()) + list(self.kb_queries.parameters())

    def save_pretrained(self, directory: str | os.PathLike, *, dtype: torch.dtype = torch.float16) -> Path:
        """Write ``kblam_config.json`` + adapter-only ``kblam_adapters.safetensors`` (fp16 by default)."""
        return checkpoint.save_checkpoint(self, directory, dtype=dtype)

    def load_trainable(self, file: str | os.PathLike) -> None:
        """Load adapter/query-head weights (safetensors only; shapes must match)."""
        checkpoint.load_trainable(self, file)

    # ---------------------------------------------------------------- KB plumbing
    def kb_manager(self, kb: KnowledgeBase | None = None) -> KBManager:
        """A :class:`KBManager` tracking ``kb`` with this model's encoder (and, from
        ``config.kb_index_min_size`` triples, a key index: ``config.kb_index``)."""
        return KBManager(kb, self.encoder, index=self.config.kb_index, index_min_size=self.config.kb_index_min_size,
                         store_values=self.stores_values)

    def load_kb(self, path: str | os.PathLike, kb: KnowledgeBase | None = None) -> KBManager:
        """An encoded KB file, verified (see :meth:`KBManager.load`), under this model's index policy."""
        return KBManager.load(path, self.encoder, kb=kb, index=self.config.kb_index,
                              index_min_size=self.config.kb_index_min_size)

    @property
    def stores_values(self) -> bool:
        """Whether value tokens are ever read: only by the full attention path (``inject_values``);
        the retrieval pass reads keys, grounded mode the facts' text, pure mode the backbone's states."""
        return bool(self.config.inject_values)

    def encode_kb(self, kb: KBLike) -> KBTokens | None:
        """Turn any KB-like input into a consistent :class:`KBTokens` snapshot (None for no KB)."""
        if kb is None:
            return None
        if isinstance(kb, KBTokens):
            return kb
        if isinstance(kb, KBManager):
            return kb.snapshot()
        if isinstance(kb, KnowledgeBase):
            version, triples = kb.snapshot()
        else:
            triples = tuple(KnowledgeBase(kb))
            version = None
        keys, values, emb = self.encoder.encode_with_key_embeddings(triples, values=self.stores_values)
        ids = torch.arange(len(triples))
        index = None
        if self.config.kb_index is not None and len(triples) >= max(1, self.config.kb_index_min_size):
            index = KeyIndex.build(emb, ids, self.config.kb_index, nprobe=self.config.kb_index_nprobe,
                                   metric=self.encoder.index_metric())
        return KBTokens(version if version is not None else -1, triples, keys, values, emb, ids, index)

    def kb_context(self, tokens: KBTokens | None, *, record: bool = False, keep_logits: bool = False,
                   top_k: int | None = None, scores_only: bool = False,
                   kb_len: int | None = None) -> KBContext | None:
        """The attention context for these tokens (None when the KB is empty: exact base model).

        ``scores_only``: a retrieval pass that records per-triple retrieval probabilities
        and leaves the backbone's outputs unchanged; over an indexed KB it scores the index's
        candidates only. ``kb_len``: the KB size for the score shift when ``tokens`` are a
        subset of a larger KB (the index's candidates).
        """
        if tokens is None or len(tokens) == 0:
            return None
        # The KB's own tensors, not a copy (``.to`` is a no-op on the same device): the null
        # token travels separately instead of being concatenated onto every knowledge token.
        device = next(self.backbone.parameters()).device
        keys, values = tokens.keys.to(device), tokens.values.to(device)
        null = self.adapters.null_token()
        null_keys = null_values = None
        if null is not None:
            null_keys, null_values = null[0][0].to(device, keys.dtype), null[1][0].to(device, values.dtype)
        return KBContext(
            keys=keys, values=values, null_keys=null_keys, null_values=null_values,
            layer_map={l: j for j, l in enumerate(self.config.kb_layers)},
            query_projections={int(k): v for k, v in self.kb_queries.items()},
            kb_len=kb_len or len(tokens), kb_scale_factor=self.config.kb_scale_factor,
            chunk_size=self.config.chunk_size, top_k=top_k if top_k is not None else self.config.top_k_kb,
            record=record, keep_logits=keep_logits, scores_only=scores_only,
            key_search=self.key_search(tokens) if scores_only and not keep_logits else None,
        )

    def key_search(self, tokens: KBTokens) -> KeySearch | None:
        """The index's candidate search for this snapshot (None without an index); kept for the
        latest snapshot, whose row-of-id table costs a sort of the KB's ids to build."""
        if tokens.index is None or tokens.ids is None or tokens.key_embeddings is None:
            return None
        if self._key_search is not None and self._key_search[0] is tokens:
            return self._key_search[1]
        search = KeySearch(tokens.index, tokens.ids, tokens.key_embeddings,
                           self.encoder.key_projections(),
                           candidates=self.config.kb_index_candidates, tail_sample=self.config.kb_index_tail_sample,
                           layer_queries=self.config.kb_index_layer_queries)
        tokens.index.nprobe = self.config.kb_index_nprobe
        self._key_search = (tokens, search)
        return search

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                kb: KBTokens | None = None, *, context: KBContext | None = None, **kwargs: Any):
        """Backbone forward with knowledge tokens (``context`` overrides ``kb``)."""
        ctx = context if context is not None else self.kb_context(kb)
        with use_kb(ctx):
            return self.backbone(input_ids=input_ids, attention_mask=attention_mask, **kwargs)

    @property
    def value_states(self) -> ValueStateEncoder:
        """Backbone states of triples' value text, computed on first use (LRU-cached)."""
        if self._value_states is None:
            text_of = fact_sentence if self.config.value_text == "fact" else (lambda t: t.value)
            self._value_states = ValueStateEncoder(self.backbone, self.tokenizer, text_of)
        return self._value_states

    # ------------------------------------------------------------------ prompting
    def messages_for(self, prompt_or_messages: str | Messages) -> list[dict[str, str]]:
        """Normalise a string or chat messages; adds the default system prompt if none is given."""
        return prompting.messages_for(prompt_or_messages, self.config.system_prompt)

    def prompt_ids(self, prompt_or_messages: str | Messages, *, check_length: bool = True) -> torch.Tensor:
        """Token ids of the chat-formatted prompt, ending with the assistant header.

        ``check_length``: raise :class:`~..errors.PromptTooLongError` when the prompt leaves no
        room in the backbone's context (off only to measure prompts, never to run them)."""
        return prompting.prompt_ids(self, prompt_or_messages, check_length=check_length)

    def question_text(self, prompt_or_messages: str | Messages) -> str:
        """The question itself: the string, or the content of the last user message."""
        return prompting.question_text(self.messages_for(prompt_or_messages))

    def resolved_question(self, prompt_or_messages: str | Messages, name: str) -> str:
        """The last user message, naming the candidate's entity when only the earlier turns did.

        After a turn about Quorvex, "And its budget?" is compared with a key as "And
        Quorvex's budget?" and "And the budget?" as "And the budget of Quorvex?": a follow-up
        agrees with its entity's keys as the full question would, and an absent property
        still disagrees."""
        return prompting.resolved_question(self, prompt_or_messages, name)

    def _history_weights(self, question, n_tokens: int) -> torch.Tensor | None:
        """``[1, n_tokens]`` KB-query weights (see :func:`.prompting.history_weights`)."""
        return prompting.history_weights(self, question, n_tokens)

    def _template_length(self, messages) -> int:
        """Tokens of ``messages`` in the chat template, without a generation prompt (0 for none)."""
        return prompting.template_length(self.tokenizer, messages)

    # ------------------------------------------------------------------ refusal
    @property
    def refusal_policy(self) -> RefusalPolicy:
        """The refusal decision over this model's config and question-key agreement."""
        return RefusalPolicy(self.config, self.key_agreement)

    @property
    def refusal_classifier(self) -> RefusalClassifier | None:
        """The config's :class:`~.refusal.RefusalClassifier`, or None (then the null/best ratio rule)."""
        return self.refusal_policy.classifier

    @property
    def refusal_threshold(self) -> float:
        """Refusal scores above this refuse: the classifier's threshold, else ``refusal_ratio``."""
        return self.refusal_policy.threshold

    def is_kb_turn(self, found: Retrieval) -> bool:
        """Whether a turn the KB cannot answer is still about the KB (see :class:`~.refusal.RefusalPolicy`)."""
        return self.refusal_policy.is_kb_turn(found)

    # ------------------------------------------------------------------ retrieval
    def retrieve(self, question: str | Messages, kb: KBLike, k: int = 5) -> tuple[list[TripleScore], float]:
        """Rank triples for a question by KB attention in one prefill pass; returns (top-k, null score)."""
        found = self._retrieve(question, kb, k)
        return found.top, found.null

    def _retrieve(self, question, kb: KBLike, k: int | None, *, rerank: bool = False) -> Retrieval:
        """Top-k triples, null score and refusal decision from a scores-only pass.

        ``rerank`` (grounded mode): the attention's top candidates are ordered by key
        agreement; otherwise the order is the attention's own. ``k=None``: as many of the
        reranked candidates as the question asks for (``config.extra_fact_margin``).

        In a conversation, the pass reads the whole chat (earlier turns weigh
        ``config.history_weight``); when its best triple's entity is named only in the
        earlier turns, the last message is a follow-up ("And its budget?"): it is scored
        again as the question it stands for ("And Quorvex's budget?", see
        :meth:`resolved_question`), so retrieval and refusal read it as a single question."""
        return retrieval.retrieve(self, question, kb, k, rerank=rerank)

    def _asked_count(self, agreement: Sequence[float]) -> int:
        """How many facts a question asks for, from its candidates' key agreement (best first)."""
        return retrieval.asked_count(agreement, self.config.extra_fact_margin, self.config.max_facts)

    def key_agreement(self, questions: Sequence[str | Messages], triples: Sequence[Triple],
                      probs: torch.Tensor, candidates: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, k]`` cosines between each question and the keys of its attention's top triples.

        ``candidates`` ``[B, k]``: triple indices in attention order (default: the top
        ``AGREEMENT_TOP_K`` of ``probs``). Embeds the question (its last user message) and
        the ``k`` key texts with the KB's own sentence encoder; see :mod:`.refusal` for why
        the refusal decision reads them.
        """
        return retrieval.question_key_agreement(self, questions, triples, probs, candidates)

    def retrieve_batch(self, questions: Sequence[str | Messages], kb: KBLike, *, batch_size: int = 16,
                       return_refusal_scores: bool = False):
        """Retrieval scores for many questions against one KB: ``([Q, N] scores, [Q] null scores)``.

        One left-padded scores-only prefill per batch (see :mod:`..attention.scoring`); the score
        of a triple is its probability under the prompt-averaged KB logits, averaged over heads
        and retrieval layers. ``return_refusal_scores`` adds ``[Q]`` refusal scores (refuse
        above :attr:`refusal_threshold`).
        """
        return retrieval.retrieve_batch(self, questions, kb, batch_size=batch_size,
                                        return_refusal_scores=return_refusal_scores)

    # ----------------------------------------------------------------- generation
    @torch.no_grad()
    def generate(self, prompt_or_messages: str | Messages, kb: KBLike = None, *, max_new_tokens: int = 64,
                 temperature: float = 0.0, stop: Sequence[str] | None = None, streamer: Any = None,
                 mode: AnswerMode = "kblam", grounded_k: int | None = None, top_k_kb: int | None = None,
                 seed: int | None = None) -> GenerationResult:
        """Answer with knowledge tokens in attention.

        ``mode="kblam"``: pure KBLaM (the KB's text never enters the prompt): a scores-only
        pass selects the asked triples; their value blocks (:mod:`..attention.value_blocks`)
        are attended while the answer is written.
        ``mode="grounded"``: the same pass picks the triples and places their text in the
        prompt (exact values; O(k) prompt cost); ``grounded_k`` triples, or as many as the
        question asks for (``None``, see ``config.extra_fact_margin``).
        In both modes, when the refusal policy (:mod:`.refusal`) decides that the KB cannot
        answer, the answer is ``config.refusal`` for questions about the KB; other turns
        (greetings, tasks) are answered by the backbone alone (``config.non_kb_turns``).
        """
        if grounded_k is not None and (isinstance(grounded_k, bool) or not isinstance(grounded_k, int)
                                       or grounded_k <= 0):
            raise ConfigError(f"grounded_k must be a positive integer or None, got {grounded_k!r}")
        from .limits import check_sampling

        check_sampling(temperature)  # NaN/inf temperature: typed error, not silent greedy
        check_mode(mode)
        if max_new_tokens <= 0:
            raise ConfigError(f"max_new_tokens must be positive, got {max_new_tokens!r}")
        tokens = self.encode_kb(kb)
        messages = self.messages_for(prompt_or_messages)
        if mode == "grounded":
            return generation.answer_grounded(self, messages, tokens, max_new_tokens=max_new_tokens,
                                              temperature=temperature, stop=stop, streamer=streamer, k=grounded_k,
                                              top_k_kb=top_k_kb, seed=seed)
        if self.config.value_source == "states" and tokens is not None and len(tokens):
            return generation.answer_from_states(self, messages, tokens, max_new_tokens=max_new_tokens,
                                                 temperature=temperature, stop=stop, streamer=streamer,
                                                 top_k_kb=top_k_kb, seed=seed)
        return self._generate(messages, tokens, max_new_tokens=max_new_tokens, temperature=temperature, stop=stop,
                              streamer=streamer, top_k_kb=top_k_kb, seed=seed)

    def _generate(self, messages, tokens, *, max_new_tokens, temperature, stop, streamer, top_k_kb, seed,
                  use_kb_tokens: bool = True, answer_prefix: str | None = None,
                  end: Sequence[str] = (), context: KBContext | None = None,
                  prefix_streamed: int = 0) -> GenerationResult:
        """One decode with the KB in attention. ``stop`` strings end the answer and are cut off;
        ``end`` strings end it and are kept. ``prefix_streamed``: characters of ``answer_prefix``
        the streamer already has."""
        return generation.decode(self, messages, tokens, max_new_tokens=max_new_tokens, temperature=temperature,
                                 stop=stop, streamer=streamer, top_k_kb=top_k_kb, seed=seed,
                                 use_kb_tokens=use_kb_tokens, answer_prefix=answer_prefix, end=end, context=context,
                                 prefix_streamed=prefix_streamed)
