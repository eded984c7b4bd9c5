"""``KBLaMModel``: a frozen HF causal LM that attends to knowledge tokens.

Only the adapters and the KB query heads are trained and saved (safetensors); the
backbone and the sentence encoder are named in the config and loaded from where
they live (wheel, local directory or local HF cache).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, NamedTuple, Sequence

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import LogitsProcessor, LogitsProcessorList

from ..attention.context import KBContext, use_kb
from ..attention.injection import attention_modules, inject_kb_attention
from ..attention.value_blocks import build_value_blocks
from ..encoding.adapters import KnowledgeAdapters
from ..encoding.kb_encoder import KBEncoder
from ..encoding.key_index import KeyIndex, KeySearch, key_projections
from ..encoding.manager import KBManager, KBTokens
from ..encoding.value_states import ValueStateEncoder
from ..errors import ConfigError, KBValidationError, ModelNotFoundError
from ..kb.knowledge_base import KnowledgeBase
from ..kb.triple import Triple
from .config import KBLaMConfig
from .grounded_answer import answer_from_facts
from .limits import check_prompt_length
from .modes import AnswerMode, check_mode
from .grounding import fact_sentence
from .refusal import AGREEMENT_TOP_K, RefusalClassifier, key_agreement, refusal_features, top_triples

logger = logging.getLogger(__name__)

# A follow-up's pronoun that stands for the entity of an earlier turn ("its founder").
_POSSESSIVE = re.compile(r"\b(its|their|his|her)\b", re.IGNORECASE)


def _names_no_entity(text: str) -> bool:
    """No capitalised word after the first one (nor a number): "And its budget?", not "Who founded Quorvex?"."""
    words = re.findall(r"[\w'&.-]+", text)[1:]
    return not any(w[:1].isupper() or w[:1].isdigit() for w in words if w != "I")

WEIGHTS_NAME = "kblam_adapters.safetensors"
CONFIG_NAME = "kblam_config.json"
DEFAULT_WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights" / "smollm2-135m-minilm"

Messages = Sequence[dict[str, str]]
KBLike = KnowledgeBase | KBManager | KBTokens | Iterable[Triple | dict | tuple] | None


@dataclass
class TripleScore:
    """How much attention a triple received (mean KB attention mass over the retrieval layers)."""

    triple: Triple
    score: float


class Retrieval(NamedTuple):
    """One scores-only pass: the selected triples, the null token's score, the refusal decision and
    each selected triple's question-key agreement."""

    top: list[TripleScore]
    null: float
    refuse: bool
    agreement: list[float]
    candidates: tuple[Triple, ...] = ()  # the attention's top candidates, attention order
    scores: torch.Tensor | None = None  # [N] every triple's retrieval score (the KB's order)
    layer_scores: dict[int, torch.Tensor] | None = None  # per KB layer, [N (+1 null)]


@dataclass
class GenerationResult:
    """Output of :meth:`KBLaMModel.generate`."""

    text: str
    triples: tuple[Triple, ...] = ()
    scores: torch.Tensor | None = None  # [N] per-triple retrieval score
    layer_scores: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> [N]
    null_score: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    kb_version: int | None = None
    mode: str = "kblam"

    def top_k(self, k: int = 5) -> list[TripleScore]:
        """The k triples that received the most attention, best first."""
        if self.scores is None or not self.triples:
            return []
        k = min(k, len(self.triples))
        vals, idx = torch.topk(self.scores, k)
        return [TripleScore(self.triples[i], float(v)) for v, i in zip(vals.tolist(), idx.tolist())]


class _RefusalGate(LogitsProcessor):
    """Pure mode without value injection: decide on refusal once, right after the prefill.

    At its first call the scores-only records hold the prompt's retrieval distributions
    (what :meth:`KBLaMModel.retrieve_batch` computes), so the decision costs no second
    pass. A refusal forces the end-of-sequence token.
    """

    def __init__(self, model: "KBLaMModel", ctx: KBContext, messages, triples, streamer=None):
        self.model, self.ctx, self.messages, self.triples, self.streamer = model, ctx, messages, triples, streamer
        self.refused: bool | None = None
        eos = model.tokenizer.eos_token_id
        self.eos = eos if isinstance(eos, int) else (eos or [0])[0]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.refused is None:
            probs = self.model._layer_probs(self.ctx)
            score = self.model._refusal_scores(probs, [self.messages], self.triples)[0]
            self.refused = bool(score > self.model.refusal_threshold)
            if self.refused and self.streamer is not None and hasattr(self.streamer, "on_finalized_text"):
                self.streamer.on_finalized_text(self.model.config.refusal)
        if self.refused:
            scores = torch.full_like(scores, float("-inf"))
            scores[:, self.eos] = 0.0
        return scores


def _query_weight(attn: nn.Module, kb_dim: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The backbone's query projection (used to initialise the KB query head)."""
    if hasattr(attn, "q_proj"):
        return attn.q_proj.weight, attn.q_proj.bias
    if hasattr(attn, "qkv_proj"):  # Phi-3 style fused projection
        w = attn.qkv_proj.weight[:kb_dim]
        b = attn.qkv_proj.bias[:kb_dim] if attn.qkv_proj.bias is not None else None
        return w, b
    raise ConfigError(f"{type(attn).__name__} has no q_proj/qkv_proj to initialise the KB query heads from")


def _embedding_dim(sentence_encoder: Any) -> int:
    getter = getattr(sentence_encoder, "get_embedding_dimension", None) or sentence_encoder.get_sentence_embedding_dimension
    return int(getter())


class KBLaMModel(nn.Module):
    """Backbone (``.backbone``) + :class:`KnowledgeAdapters` + per-KB-layer query heads + :class:`KBEncoder`."""

    def __init__(self, backbone: nn.Module, tokenizer: Any, config: KBLaMConfig, sentence_encoder: Any = None):
        super().__init__()
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.config = config
        self.adapters = KnowledgeAdapters(config.encoder_dim, config.kb_dim, len(config.kb_layers), config.use_null_token)
        modules = attention_modules(backbone)
        heads = {}
        for layer in config.kb_layers:
            w, b = _query_weight(modules[layer], config.kb_dim)
            # always with a bias: retrieval training folds a feature standardisation into it
            lin = nn.Linear(w.shape[1], config.kb_dim, bias=True)
            with torch.no_grad():
                lin.weight.copy_(w)
                lin.bias.copy_(b if b is not None else torch.zeros(config.kb_dim))
            heads[str(layer)] = lin
        self.kb_queries = nn.ModuleDict(heads)
        inject_kb_attention(backbone, config.kb_layers)
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
        from .backbone import load_backbone
        from ..encoding.sentence_encoder import load_sentence_encoder

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

    @classmethod
    def from_backbone(cls, backbone: str | None = None, encoder: str | None = None, *,
                      dtype: torch.dtype = torch.float32, **config_overrides: Any) -> "KBLaMModel":
        """A fresh (untrained) KBLaM model around any backbone + sentence encoder."""
        from .backbone import load_backbone
        from ..encoding.sentence_encoder import load_sentence_encoder
        from ..settings import DEFAULT_BACKBONE, DEFAULT_ENCODER

        model_bb, tokenizer = load_backbone(backbone, dtype=dtype)
        st = load_sentence_encoder(encoder)
        config = KBLaMConfig.for_backbone(
            model_bb.config, backbone=str(backbone or DEFAULT_BACKBONE), encoder=str(encoder or DEFAULT_ENCODER),
            encoder_dim=_embedding_dim(st), **config_overrides)
        return cls(model_bb, tokenizer, config, st)

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Only what KBLaM trains: adapters and KB query heads."""
        sd = {f"adapters.{k}": v for k, v in self.adapters.state_dict().items()}
        sd.update({f"kb_queries.{k}": v for k, v in self.kb_queries.state_dict().items()})
        return sd

    def trainable_parameters(self) -> list[nn.Parameter]:
        return list(self.adapters.parameters()) + list(self.kb_queries.parameters())

    def save_pretrained(self, directory: str | os.PathLike, *, dtype: torch.dtype = torch.float16) -> Path:
        """Write ``kblam_config.json`` + adapter-only ``kblam_adapters.safetensors`` (fp16 by default)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().to(dtype).contiguous().cpu() for k, v in self.trainable_state_dict().items()}
        tmp = directory / f".{WEIGHTS_NAME}.tmp"
        save_file(tensors, str(tmp), metadata={"format": "kblam-adapters/1", "backbone": self.config.backbone,
                                               "encoder": self.config.encoder})
        os.replace(tmp, directory / WEIGHTS_NAME)
        self.config.save(directory / CONFIG_NAME)
        return directory

    def load_trainable(self, file: str | os.PathLike) -> None:
        """Load adapter/query-head weights (safetensors only; shapes must match)."""
        try:
            tensors = load_file(str(file))
        except Exception as exc:  # noqa: BLE001
            raise ModelNotFoundError(f"cannot read KBLaM weights {str(file)!r}: {exc}") from exc
        own = self.trainable_state_dict()
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

    # ---------------------------------------------------------------- KB plumbing
    def kb_manager(self, kb: KnowledgeBase | None = None) -> KBManager:
        """A :class:`KBManager` tracking ``kb`` with this model's encoder (and, from
        ``config.kb_index_min_size`` triples, a key index: ``config.kb_index``)."""
        return KBManager(kb, self.encoder, index=self.config.kb_index, index_min_size=self.config.kb_index_min_size)

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
        keys, values, emb = self.encoder.encode_with_key_embeddings(triples)
        ids = torch.arange(len(triples))
        index = None
        if self.config.kb_index is not None and len(triples) >= max(1, self.config.kb_index_min_size):
            index = KeyIndex.build(emb, ids, self.config.kb_index, nprobe=self.config.kb_index_nprobe)
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
                           key_projections(self.adapters.key.weight, len(self.config.kb_layers), self.config.kb_dim),
                           candidates=self.config.kb_index_candidates, tail_sample=self.config.kb_index_tail_sample)
        tokens.index.nprobe = self.config.kb_index_nprobe
        self._key_search = (tokens, search)
        return search

    def _index_candidates(self, messages, tokens: KBTokens) -> KBTokens:
        """The full attention path over an indexed KB: the knowledge tokens of the retrieval
        pass's candidates (attention is exact over them; the rest of the KB gets none)."""
        found = self._retrieve_once(messages, tokens, None, rerank=False)
        rows = torch.nonzero(found.scores > 0).flatten()
        return KBTokens(tokens.version, tuple(tokens.triples[int(i)] for i in rows), tokens.keys[rows],
                        tokens.values[rows])

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                kb: KBTokens | None = None, *, context: KBContext | None = None, **kwargs: Any):
        """Backbone forward with knowledge tokens (``context`` overrides ``kb``)."""
        ctx = context if context is not None else self.kb_context(kb)
        with use_kb(ctx):
            return self.backbone(input_ids=input_ids, attention_mask=attention_mask, **kwargs)

    # ------------------------------------------------------------------ prompting
    def messages_for(self, prompt_or_messages: str | Messages) -> list[dict[str, str]]:
        """Normalise a string or chat messages; adds the default system prompt if none is given."""
        if isinstance(prompt_or_messages, str):
            messages = [{"role": "user", "content": prompt_or_messages}]
        else:
            messages = [dict(m) for m in prompt_or_messages]
        if not messages:
            raise KBValidationError("at least one message is required", field="messages")
        for i, m in enumerate(messages):
            if not isinstance(m.get("content"), str):
                raise KBValidationError("message content must be a string", record=f"message #{i}", field="content")
            if m.get("role") not in ("system", "user", "assistant"):
                raise KBValidationError(f"unknown role {m.get('role')!r}", record=f"message #{i}", field="role")
        if messages[0]["role"] != "system" and self.config.system_prompt:
            messages.insert(0, {"role": "system", "content": self.config.system_prompt})
        return messages

    def prompt_ids(self, prompt_or_messages: str | Messages, *, check_length: bool = True) -> torch.Tensor:
        """Token ids of the chat-formatted prompt, ending with the assistant header.

        ``check_length``: raise :class:`~..errors.PromptTooLongError` when the prompt leaves no
        room in the backbone's context (off only to measure prompts, never to run them)."""
        messages = self.messages_for(prompt_or_messages)
        ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                 return_dict=True)["input_ids"]
        if check_length:
            check_prompt_length(ids, self.backbone.config)  # before any forward: typed error in ms
        return ids.to(next(self.backbone.parameters()).device)

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
        In both modes, when the refusal rule (:mod:`.refusal`) decides that the KB cannot
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
            return self._generate_grounded(messages, tokens, max_new_tokens=max_new_tokens, temperature=temperature,
                                           stop=stop, streamer=streamer, k=grounded_k, top_k_kb=top_k_kb, seed=seed)
        if self.config.value_source == "states" and tokens is not None and len(tokens):
            return self._generate_from_states(messages, tokens, max_new_tokens=max_new_tokens,
                                              temperature=temperature, stop=stop, streamer=streamer,
                                              top_k_kb=top_k_kb, seed=seed)
        return self._generate(messages, tokens, max_new_tokens=max_new_tokens, temperature=temperature, stop=stop,
                              streamer=streamer, top_k_kb=top_k_kb, seed=seed)

    def _generate(self, messages, tokens, *, max_new_tokens, temperature, stop, streamer, top_k_kb, seed,
                  use_kb_tokens: bool = True, answer_prefix: str | None = None,
                  end: Sequence[str] = (), context: KBContext | None = None,
                  prefix_streamed: int = 0) -> GenerationResult:
        """``stop`` strings end the answer and are cut off; ``end`` strings end it and are kept.
        ``prefix_streamed``: characters of ``answer_prefix`` the streamer already has."""
        ids = self.prompt_ids(messages)
        n_prompt = int(ids.shape[1])
        if answer_prefix:
            # the answer starts with this text; the model continues it (streamed first)
            pre = self.tokenizer(answer_prefix, add_special_tokens=False, return_tensors="pt")["input_ids"]
            ids = torch.cat([ids, pre.to(ids.device)], dim=1)
            if streamer is not None and hasattr(streamer, "on_finalized_text"):
                streamer.on_finalized_text(answer_prefix[prefix_streamed:])
        ctx = context
        if use_kb_tokens and ctx is None:
            kb_len = None
            if self.config.inject_values and tokens is not None and tokens.index is not None:
                kb_len, tokens = len(tokens), self._index_candidates(messages, tokens)
            ctx = self.kb_context(tokens, record=True, top_k=top_k_kb, scores_only=not self.config.inject_values,
                                  kb_len=kb_len)
        gen_kwargs: dict[str, Any] = dict(max_new_tokens=max_new_tokens, pad_token_id=self.tokenizer.pad_token_id)
        if temperature and temperature > 0:
            gen_kwargs.update(do_sample=True, temperature=float(temperature))
            if seed is not None:
                torch.manual_seed(seed)
        else:
            gen_kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if stop or end:
            gen_kwargs["stop_strings"] = [*(stop or ()), *end]
            gen_kwargs["tokenizer"] = self.tokenizer
        if streamer is not None:
            gen_kwargs["streamer"] = streamer
        gate = None
        if ctx is not None and ctx.scores_only and self.config.refusal_classifier:
            # Values are not injected, so the answer cannot refuse by itself: the refusal rule
            # (the one grounded mode uses) reads the prefill's retrieval scores and, if it
            # fires, ends generation at the first token; the answer is the refusal sentence.
            gate = _RefusalGate(self, ctx, messages, tokens.triples, streamer)
            gen_kwargs["logits_processor"] = LogitsProcessorList([gate])
        with use_kb(ctx):
            out = self.backbone.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **gen_kwargs)
        new = out[0, ids.shape[1]:]
        text = self.config.refusal if gate is not None and gate.refused else self.tokenizer.decode(
            new, skip_special_tokens=True)
        # Stop and end strings are looked for where generate() looked for them: in the
        # generated text, never in the answer prefix (which may contain the value itself).
        cut = [text.find(s) for s in stop or () if s in text]
        cut += [text.find(s) + len(s) for s in end if s in text]
        if cut:
            text = text[: min(cut)]
        if answer_prefix:
            text = answer_prefix + text
        result = GenerationResult(text=text.strip(), prompt_tokens=n_prompt,
                                  completion_tokens=int(out.shape[1]) - n_prompt)
        if tokens is not None:
            result.triples = tokens.triples
            result.kb_version = tokens.version
        if ctx is not None and ctx.records:
            self._fill_scores(result, ctx)
        return result

    def _fill_scores(self, result: GenerationResult, ctx: KBContext) -> None:
        n = ctx.kb_len
        layers = [l for l in self.config.score_layers if l in ctx.records]
        for layer, rec in ctx.records.items():
            result.layer_scores[layer] = rec.mean_mass()[0].float().cpu()
        if layers:
            stacked = torch.stack([result.layer_scores[l] for l in layers]).mean(0)
            result.scores = stacked[:n]
            result.null_score = float(stacked[n]) if stacked.shape[0] > n else 0.0

    def retrieve(self, question: str | Messages, kb: KBLike, k: int = 5) -> tuple[list[TripleScore], float]:
        """Rank triples for a question by KB attention in one prefill pass; returns (top-k, null score)."""
        found = self._retrieve(question, kb, k)
        return found.top, found.null

    def _retrieve(self, question, kb: KBLike, k: int | None, *, rerank: bool = False) -> Retrieval:
        """Top-k triples, null score and refusal decision from a scores-only pass.

        ``rerank`` (grounded mode): the attention's top candidates are ordered by key
        agreement; otherwise the order is the attention's own. ``k=None``: as many of the
        reranked candidates as the question asks for (:meth:`_asked_count`).

        In a conversation, the pass reads the whole chat (earlier turns weigh
        ``config.history_weight``); when its best triple's entity is named only in the
        earlier turns, the last message is a follow-up ("And its budget?"): it is scored
        again as the question it stands for ("And Quorvex's budget?", see
        :meth:`resolved_question`), so retrieval and refusal read it as a single question."""
        tokens = self.encode_kb(kb)
        if tokens is None or len(tokens) == 0:
            return Retrieval([], 0.0, True, [])
        found = self._retrieve_once(question, tokens, k, rerank=rerank)
        if isinstance(question, str) or not found.top:
            return found
        last = self.question_text(question)
        if _names_no_entity(last):
            for triple in (found.top[0].triple, *found.candidates):  # the best-attended entity of the earlier turns
                resolved = self.resolved_question(question, triple.name)
                if resolved != last:
                    return self._retrieve_once(resolved, tokens, k, rerank=rerank)
        if sum(m["role"] == "user" for m in self.messages_for(question)) > 1:
            return self._retrieve_once(last, tokens, k, rerank=rerank)  # names its own entity
        return found

    def _retrieve_once(self, question, tokens: KBTokens, k: int | None, *, rerank: bool) -> Retrieval:
        ids = self.prompt_ids(question)
        ctx = self.kb_context(tokens, record=True, scores_only=True)
        ctx.row_weights = self._history_weights(question, int(ids.shape[1]))
        with torch.no_grad(), use_kb(ctx):
            self.backbone(input_ids=ids, attention_mask=torch.ones_like(ids))
        result = GenerationResult(text="", triples=tokens.triples)
        self._fill_scores(result, ctx)
        probs = self._layer_probs(ctx)
        candidates = top_triples(probs, max(k or 1, AGREEMENT_TOP_K))  # [1, c], attention order
        cosines = self.key_agreement([question], tokens.triples, probs, candidates)
        refuse = bool(self._refusal_scores(probs, [question], tokens.triples, cosines)[0] > self.refusal_threshold)
        positions = list(range(candidates.shape[1]))
        if rerank:
            # attention picks the candidates, the sentence encoder orders them (stable sort)
            positions = torch.argsort(-cosines[0], stable=True).tolist()
        agreement = [float(cosines[0, i]) for i in positions]
        if k is None:
            k = self._asked_count(agreement)
        top = [TripleScore(tokens.triples[int(candidates[0, i])], float(result.scores[int(candidates[0, i])]))
               for i in positions[:k]]
        return Retrieval(top, result.null_score, refuse, agreement[:k],
                         tuple(tokens.triples[int(i)] for i in candidates[0].tolist()), result.scores,
                         result.layer_scores)

    def _asked_count(self, agreement: Sequence[float]) -> int:
        """How many facts a question asks for: the best candidate, plus each next one whose key
        agrees with the question within ``config.extra_fact_margin`` of the best (two-fact questions)."""
        margin = self.config.extra_fact_margin
        if margin is None or not agreement:
            return 1
        n = 1
        while n < min(len(agreement), self.config.max_facts) and agreement[n] >= agreement[0] - margin:
            n += 1
        return n

    @property
    def refusal_classifier(self) -> "RefusalClassifier | None":
        """The config's :class:`~.refusal.RefusalClassifier`, or None (then the null/best ratio rule)."""
        return RefusalClassifier(**self.config.refusal_classifier) if self.config.refusal_classifier else None

    def _layer_probs(self, ctx: KBContext) -> torch.Tensor:
        """``[B, L, N + 1]`` retrieval distributions of the score layers (zeros column if no null token)."""
        layers = [l for l in self.config.score_layers if l in ctx.records]
        probs = torch.stack([ctx.records[l].mean_mass() for l in layers], dim=1).float().cpu()
        if probs.shape[-1] == ctx.kb_len:
            probs = torch.cat([probs, torch.zeros(*probs.shape[:2], 1)], dim=-1)
        return probs

    def _refusal_scores(self, probs: torch.Tensor, questions: Sequence[str | Messages],
                        triples: Sequence[Triple], cosines: torch.Tensor | None = None) -> torch.Tensor:
        """``[B]`` refusal scores from :meth:`_layer_probs` (refuse above :attr:`refusal_threshold`):
        the refusal classifier's probability, or without one the null/best mass ratio.
        ``cosines``: :meth:`key_agreement` of the attention's top triples, if already computed."""
        clf = self.refusal_classifier
        if clf is not None:
            if clf.reads_agreement and cosines is None:
                cosines = self.key_agreement(questions, triples, probs)
            if cosines is not None:
                cosines = cosines[:, :AGREEMENT_TOP_K]
            return clf.probability(refusal_features(probs, len(triples), cosines, clf.features))
        overall = probs.mean(1)
        return overall[:, -1] / overall[:, :-1].max(-1).values.clamp_min(1e-12)

    def key_agreement(self, questions: Sequence[str | Messages], triples: Sequence[Triple],
                      probs: torch.Tensor, candidates: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, k]`` cosines between each question and the keys of its attention's top triples.

        ``candidates`` ``[B, k]``: triple indices in attention order (default: the top
        ``AGREEMENT_TOP_K`` of ``probs``). Embeds the question (its last user message) and
        the ``k`` key texts with the KB's own sentence encoder; see :mod:`.refusal` for why
        the refusal decision reads them.
        """
        top = top_triples(probs) if candidates is None else candidates
        texts = [self.resolved_question(q, triples[i].name) for q, row in zip(questions, top.tolist()) for i in row]
        unique = list(dict.fromkeys(texts))  # a single question is one text for all its candidates
        where = {t: j for j, t in enumerate(unique)}
        q_emb = self.encoder.embed(unique, show_progress=False)[[where[t] for t in texts]].view(*top.shape, -1)
        k_emb = self.encoder.embed([triples[i].key_text for i in top.flatten().tolist()], show_progress=False)
        return key_agreement(q_emb, k_emb.view(*top.shape, -1))

    def question_text(self, prompt_or_messages: str | Messages) -> str:
        """The question itself: the string, or the content of the last user message."""
        messages = self.messages_for(prompt_or_messages)
        users = [m["content"] for m in messages if m["role"] == "user"]
        return users[-1] if users else messages[-1]["content"]

    def resolved_question(self, prompt_or_messages: str | Messages, name: str) -> str:
        """The last user message, naming the candidate's entity when only the earlier turns did.

        After a turn about Quorvex, "And its budget?" is compared with a key as "And
        Quorvex's budget?" and "And the budget?" as "And the budget of Quorvex?": a follow-up
        agrees with its entity's keys as the full question would, and an absent property
        still disagrees."""
        question = self.question_text(prompt_or_messages)
        if isinstance(prompt_or_messages, str) or name.lower() in question.lower():
            return question
        earlier = " ".join(m["content"] for m in self.messages_for(prompt_or_messages)[:-1] if m["role"] != "system")
        if name.lower() not in earlier.lower():
            return question
        if _POSSESSIVE.search(question):
            return _POSSESSIVE.sub(f"{name}'s", question, count=1)
        return f"{question.rstrip(' ?.!')} of {name}?"

    @property
    def refusal_threshold(self) -> float:
        """Refusal scores above this refuse: the classifier's threshold, else ``refusal_ratio``."""
        clf = self.refusal_classifier
        return float(clf.threshold) if clf is not None else float(self.config.refusal_ratio)

    @torch.no_grad()
    def retrieve_batch(self, questions: Sequence[str | Messages], kb: KBLike, *, batch_size: int = 16,
                       return_refusal_scores: bool = False):
        """Retrieval scores for many questions against one KB: ``([Q, N] scores, [Q] null scores)``.

        One left-padded scores-only prefill per batch (see :mod:`..attention.scoring`); the score
        of a triple is its probability under the prompt-averaged KB logits, averaged over heads
        and retrieval layers. ``return_refusal_scores`` adds ``[Q]`` refusal scores (refuse
        above :attr:`refusal_threshold`).
        """
        tokens = self.encode_kb(kb)
        n = len(tokens) if tokens is not None else 0
        if n == 0:
            empty = (torch.zeros(len(questions), 0), torch.zeros(len(questions)))
            return (*empty, torch.full((len(questions),), float("inf"))) if return_refusal_scores else empty
        device = next(self.backbone.parameters()).device
        all_scores, all_null, all_refuse = [], [], []
        for lo in range(0, len(questions), batch_size):
            seqs = [self.prompt_ids(q)[0] for q in questions[lo:lo + batch_size]]
            width = max(len(x) for x in seqs)
            pad = self.tokenizer.pad_token_id
            ids = torch.full((len(seqs), width), pad, dtype=torch.long, device=device)
            mask = torch.zeros_like(ids)
            for i, x in enumerate(seqs):
                ids[i, width - len(x):] = x
                mask[i, width - len(x):] = 1
            ctx = self.kb_context(tokens, record=True, scores_only=True)
            with use_kb(ctx):
                self.backbone(input_ids=ids, attention_mask=mask)
            probs = self._layer_probs(ctx)  # [B, L, N + 1]
            mass = probs.mean(1)
            all_scores.append(mass[:, :n])
            all_null.append(mass[:, n])
            all_refuse.append(self._refusal_scores(probs, questions[lo:lo + batch_size], tokens.triples))
        if return_refusal_scores:
            return torch.cat(all_scores), torch.cat(all_null), torch.cat(all_refuse)
        return torch.cat(all_scores), torch.cat(all_null)

    def _refusal_result(self, top, null, tokens, mode, streamer) -> GenerationResult:
        """The refusal sentence, still reporting what was attended (it explains the refusal)."""
        res = GenerationResult(text=self.config.refusal, triples=tuple(s.triple for s in top),
                               scores=torch.tensor([s.score for s in top]), null_score=null,
                               kb_version=tokens.version, mode=mode)
        if streamer is not None:  # no tokens were generated: hand the text over directly
            if hasattr(streamer, "on_finalized_text"):
                streamer.on_finalized_text(self.config.refusal, stream_end=True)
            else:
                streamer.end()
        return res

    @property
    def value_states(self) -> ValueStateEncoder:
        """Backbone states of triples' value text, computed on first use (LRU-cached)."""
        if self._value_states is None:
            text_of = fact_sentence if self.config.value_text == "fact" else (lambda t: t.value)
            self._value_states = ValueStateEncoder(self.backbone, self.tokenizer, text_of)
        return self._value_states

    def _history_weights(self, question, n_tokens: int) -> torch.Tensor | None:
        """``[1, n_tokens]`` KB-query weights: ``config.history_weight`` for the turns before the last
        user message, 1 for the system prompt and the last turn (None for a single question)."""
        messages = self.messages_for(question)
        users = [i for i, m in enumerate(messages) if m["role"] == "user"]
        if not users or users[-1] == users[0] or self.config.history_weight == 1.0:
            return None
        history_from = self._template_length(messages[:users[0]])
        last_from = self._template_length(messages[:users[-1]])
        w = torch.ones(1, n_tokens)
        w[:, history_from:last_from] = self.config.history_weight
        return w.to(next(self.backbone.parameters()).device)

    def _template_length(self, messages) -> int:
        """Tokens of ``messages`` in the chat template, without a generation prompt (0 for none)."""
        if not messages:
            return 0
        ids = self.tokenizer.apply_chat_template(list(messages), add_generation_prompt=False, return_dict=True)
        return len(ids["input_ids"])

    def _visible_from(self, messages) -> int:
        """Position of the first prompt token after the system turn: value blocks are seen from there."""
        return self._template_length(messages[:1]) if messages and messages[0]["role"] == "system" else 0

    def _generate_from_states(self, messages, tokens, **kwargs) -> GenerationResult:
        """Pure mode: the attention selects triples; their own backbone states are the values."""
        found = self._retrieve(messages, tokens, k=None, rerank=self.config.grounded_rerank)
        if found.refuse or not found.top:
            return self._whole_kb_attention(self._not_in_kb(messages, tokens, found, "kblam", kwargs), found, tokens)
        layers = self.config.value_layers or list(range(self.config.num_hidden_layers))
        blocks = build_value_blocks(self.value_states.states([s.triple for s in found.top]),
                                    torch.tensor([s.score for s in found.top]), self._visible_from(messages), layers,
                                    self.backbone.get_decoder().rotary_emb)
        blocks.log_prior += self.config.value_bias
        empty = tokens.keys[:0]
        ctx = KBContext(keys=empty, values=empty, layer_map={}, query_projections={}, kb_len=0,
                        value_blocks=blocks)
        kwargs["stop"] = [*(kwargs.get("stop") or []), "\n"]
        res = self._generate(messages, None, use_kb_tokens=False, context=ctx, **kwargs)
        return self._whole_kb_attention(self._attribute(res, found, tokens, "kblam"), found, tokens)

    @staticmethod
    def _whole_kb_attention(res: GenerationResult, found: Retrieval, tokens: KBTokens) -> GenerationResult:
        """Pure mode reports every triple's attention, as the knowledge tokens received it."""
        if found.scores is not None:
            res.triples, res.scores, res.layer_scores = tokens.triples, found.scores, found.layer_scores or {}
        return res

    def _attribute(self, res: GenerationResult, found: Retrieval, tokens: KBTokens, mode: str) -> GenerationResult:
        """Record which triples the answer read (best first) and their attention scores."""
        res.triples = tuple(s.triple for s in found.top)
        res.scores = torch.tensor([s.score for s in found.top])
        res.null_score = found.null
        res.kb_version = tokens.version
        res.mode = mode
        return res

    def is_kb_turn(self, found: Retrieval) -> bool:
        """Whether a turn the KB cannot answer is still about the KB (refuse) or not (greetings,
        tasks: the backbone answers them under ``non_kb_turns="answer"``): its best key agreement."""
        return bool(found.agreement) and max(found.agreement) >= self.config.kb_turn_agreement

    def _not_in_kb(self, messages, tokens, found: Retrieval, mode: str, kwargs) -> GenerationResult:
        """The refusal sentence for a KB question the KB cannot answer; other turns go to the
        backbone without the KB when ``config.non_kb_turns == "answer"``."""
        if self.config.non_kb_turns == "answer" and not self.is_kb_turn(found):
            res = self._generate(messages, None, use_kb_tokens=False, **kwargs)
            res.kb_version, res.mode, res.null_score = tokens.version, mode, found.null
            return res
        return self._refusal_result(found.top, found.null, tokens, mode, kwargs.get("streamer"))

    def _generate_grounded(self, messages, tokens, *, k, **kwargs) -> GenerationResult:
        if tokens is None or len(tokens) == 0:
            res = self._generate(messages, None, **kwargs)
            res.mode = "grounded"
            return res
        found = self._retrieve(messages, tokens, k=k, rerank=self.config.grounded_rerank)
        if found.refuse or not found.top:
            return self._not_in_kb(messages, tokens, found, "grounded", kwargs)
        facts = [s.triple for s in found.top]
        res = answer_from_facts(self, messages, facts, asked=len(facts) if k is None else 1, **kwargs)
        return self._attribute(res, found, tokens, "grounded")
