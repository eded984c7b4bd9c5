"""Writing the answer: the decode loop with knowledge tokens, and the two answer modes on top of it.

Both modes start from one scores-only retrieval pass (:mod:`.retrieval`). ``kblam`` attends
to the selected triples' value blocks (:mod:`..attention.value_blocks`); ``grounded`` puts
their sentences in the prompt (:mod:`.grounded_answer`). When the refusal policy
(:mod:`.refusal`) says the KB cannot answer, the answer is the refusal sentence, or for a
turn not about the KB, the backbone's own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import torch
from transformers import LogitsProcessorList

from ..attention.context import KBContext, use_kb
from ..attention.value_blocks import build_value_blocks
from ..encoding.manager import KBTokens
from .families import family_of
from .grounded_answer import answer_from_facts
from .prompting import visible_from
from .refusal import RefusalGate
from .results import GenerationResult, Retrieval
from .retrieval import fill_scores, index_candidates, layer_probs

if TYPE_CHECKING:
    from .kblam_model import KBLaMModel


def decode(model: "KBLaMModel", messages, tokens, *, max_new_tokens, temperature, stop, streamer, top_k_kb, seed,
           use_kb_tokens: bool = True, answer_prefix: str | None = None, end: Sequence[str] = (),
           context: KBContext | None = None, prefix_streamed: int = 0) -> GenerationResult:
    """The backbone's ``generate`` with the KB in attention (see :meth:`KBLaMModel._generate`)."""
    cfg = model.config
    ids = model.prompt_ids(messages)
    n_prompt = int(ids.shape[1])
    if answer_prefix:
        # the answer starts with this text; the model continues it (streamed first)
        pre = model.tokenizer(answer_prefix, add_special_tokens=False, return_tensors="pt")["input_ids"]
        ids = torch.cat([ids, pre.to(ids.device)], dim=1)
        if streamer is not None and hasattr(streamer, "on_finalized_text"):
            streamer.on_finalized_text(answer_prefix[prefix_streamed:])
    ctx = context
    if use_kb_tokens and ctx is None:
        kb_len = None
        if cfg.inject_values and tokens is not None and tokens.index is not None:
            kb_len, tokens = len(tokens), index_candidates(model, messages, tokens)
        ctx = model.kb_context(tokens, record=True, top_k=top_k_kb, scores_only=not cfg.inject_values,
                               kb_len=kb_len)
    gen_kwargs: dict[str, Any] = dict(max_new_tokens=max_new_tokens, pad_token_id=model.tokenizer.pad_token_id)
    if temperature and temperature > 0:
        gen_kwargs.update(do_sample=True, temperature=float(temperature))
        if seed is not None:
            torch.manual_seed(seed)
    else:
        gen_kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    if stop or end:
        gen_kwargs["stop_strings"] = [*(stop or ()), *end]
        gen_kwargs["tokenizer"] = model.tokenizer
    if streamer is not None:
        gen_kwargs["streamer"] = streamer
    gate = None
    if ctx is not None and ctx.scores_only and cfg.refusal_classifier:
        # Values are not injected, so the answer cannot refuse by itself: the refusal policy
        # (the one grounded mode uses) reads the prefill's retrieval scores and, if it
        # refuses, ends generation at the first token; the answer is the refusal sentence.
        gate = RefusalGate(model.refusal_policy, lambda c: layer_probs(cfg.score_layers, c), ctx, messages,
                           tokens.triples, model.tokenizer.eos_token_id, streamer)
        gen_kwargs["logits_processor"] = LogitsProcessorList([gate])
    with use_kb(ctx):
        out = model.backbone.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **gen_kwargs)
    new = out[0, ids.shape[1]:]
    text = cfg.refusal if gate is not None and gate.refused else model.tokenizer.decode(
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
        fill_scores(cfg.score_layers, result, ctx)
    return result


def answer_from_states(model: "KBLaMModel", messages, tokens: KBTokens, **kwargs) -> GenerationResult:
    """Pure mode: the attention selects triples; their own backbone states are the values."""
    cfg = model.config
    found = model._retrieve(messages, tokens, k=None, rerank=cfg.grounded_rerank)
    if found.refuse or not found.top:
        return _whole_kb_attention(not_in_kb(model, messages, tokens, found, "kblam", kwargs), found, tokens)
    layers = cfg.value_layers or list(range(cfg.num_hidden_layers))
    blocks = build_value_blocks(model.value_states.states([s.triple for s in found.top]),
                                torch.tensor([s.score for s in found.top]), visible_from(model.tokenizer, messages), layers,
                                family_of(model.backbone).rotary_embedding(model.backbone))
    blocks.log_prior += cfg.value_bias
    empty = tokens.keys[:0]
    ctx = KBContext(keys=empty, values=empty, layer_map={}, query_projections={}, kb_len=0, value_blocks=blocks)
    kwargs["stop"] = [*(kwargs.get("stop") or []), "\n"]
    res = model._generate(messages, None, use_kb_tokens=False, context=ctx, **kwargs)
    return _whole_kb_attention(_attribute(res, found, tokens, "kblam"), found, tokens)


def answer_grounded(model: "KBLaMModel", messages, tokens: KBTokens | None, *, k, **kwargs) -> GenerationResult:
    """Grounded mode: the attention picks the triples, whose sentences go in the prompt."""
    if tokens is None or len(tokens) == 0:
        res = model._generate(messages, None, **kwargs)
        res.mode = "grounded"
        return res
    found = model._retrieve(messages, tokens, k=k, rerank=model.config.grounded_rerank)
    if found.refuse or not found.top:
        return not_in_kb(model, messages, tokens, found, "grounded", kwargs)
    facts = [s.triple for s in found.top]
    res = answer_from_facts(model, messages, facts, asked=len(facts) if k is None else 1, **kwargs)
    return _attribute(res, found, tokens, "grounded")


def not_in_kb(model: "KBLaMModel", messages, tokens: KBTokens, found: Retrieval, mode: str,
              kwargs) -> GenerationResult:
    """The refusal sentence for a KB question the KB cannot answer; other turns go to the
    backbone without the KB when the policy lets the backbone answer them."""
    policy = model.refusal_policy
    if policy.backbone_answers(found):
        res = model._generate(messages, None, use_kb_tokens=False, **kwargs)
        res.kb_version, res.mode, res.null_score = tokens.version, mode, found.null
        return res
    return policy.refusal(found.top, found.null, tokens, mode, kwargs.get("streamer"))


def _whole_kb_attention(res: GenerationResult, found: Retrieval, tokens: KBTokens) -> GenerationResult:
    """Pure mode reports every triple's attention, as the knowledge tokens received it."""
    if found.scores is not None:
        res.triples, res.scores, res.layer_scores = tokens.triples, found.scores, found.layer_scores or {}
    return res


def _attribute(res: GenerationResult, found: Retrieval, tokens: KBTokens, mode: str) -> GenerationResult:
    """Record which triples the answer read (best first) and their attention scores."""
    res.triples = tuple(s.triple for s in found.top)
    res.scores = torch.tensor([s.score for s in found.top])
    res.null_score = found.null
    res.kb_version = tokens.version
    res.mode = mode
    return res
