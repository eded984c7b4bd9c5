"""Retrieval by KB attention: one scores-only prefill ranks the triples, the refusal policy reads
the same pass, and a conversation's follow-up is scored as the question it stands for."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import torch

from ..attention.context import KBContext, use_kb
from ..encoding.manager import KBTokens
from ..kb.triple import Triple
from .prompting import Messages, names_no_entity
from .refusal import AGREEMENT_TOP_K, key_agreement, top_triples
from .results import GenerationResult, Retrieval, TripleScore

if TYPE_CHECKING:
    from .kblam_model import KBLaMModel, KBLike


def layer_probs(score_layers: Sequence[int], ctx: KBContext) -> torch.Tensor:
    """``[B, L, N + 1]`` retrieval distributions of the score layers (zeros column if no null token)."""
    layers = [l for l in score_layers if l in ctx.records]
    probs = torch.stack([ctx.records[l].mean_mass() for l in layers], dim=1).float().cpu()
    if probs.shape[-1] == ctx.kb_len:
        probs = torch.cat([probs, torch.zeros(*probs.shape[:2], 1)], dim=-1)
    return probs


def fill_scores(score_layers: Sequence[int], result: GenerationResult, ctx: KBContext) -> None:
    """Copy the recorded per-layer masses into ``result`` and average the score layers."""
    n = ctx.kb_len
    layers = [l for l in score_layers if l in ctx.records]
    for layer, rec in ctx.records.items():
        result.layer_scores[layer] = rec.mean_mass()[0].float().cpu()
    if layers:
        stacked = torch.stack([result.layer_scores[l] for l in layers]).mean(0)
        result.scores = stacked[:n]
        result.null_score = float(stacked[n]) if stacked.shape[0] > n else 0.0


def question_key_agreement(model: "KBLaMModel", questions: Sequence[str | Messages], triples: Sequence[Triple],
                           probs: torch.Tensor, candidates: torch.Tensor | None = None) -> torch.Tensor:
    """``[B, k]`` cosines between each question and the keys of its attention's top triples
    (see :meth:`KBLaMModel.key_agreement`)."""
    top = top_triples(probs) if candidates is None else candidates
    texts = [model.resolved_question(q, triples[i].name) for q, row in zip(questions, top.tolist()) for i in row]
    unique = list(dict.fromkeys(texts))  # a single question is one text for all its candidates
    where = {t: j for j, t in enumerate(unique)}
    q_emb = model.encoder.embed(unique, show_progress=False)[[where[t] for t in texts]].view(*top.shape, -1)
    k_emb = model.encoder.embed([triples[i].key_text for i in top.flatten().tolist()], show_progress=False)
    return key_agreement(q_emb, k_emb.view(*top.shape, -1))


def asked_count(agreement: Sequence[float], margin: float | None, max_facts: int) -> int:
    """How many facts a question asks for: the best candidate, plus each next one whose key
    agrees with the question within ``margin`` of the best (two-fact questions)."""
    if margin is None or not agreement:
        return 1
    n = 1
    while n < min(len(agreement), max_facts) and agreement[n] >= agreement[0] - margin:
        n += 1
    return n


def retrieve(model: "KBLaMModel", question, kb: "KBLike", k: int | None, *, rerank: bool = False) -> Retrieval:
    """Top-k triples, null score and refusal decision (see :meth:`KBLaMModel._retrieve`)."""
    tokens = model.encode_kb(kb)
    if tokens is None or len(tokens) == 0:
        return Retrieval([], 0.0, True, [])
    found = retrieve_once(model, question, tokens, k, rerank=rerank)
    if isinstance(question, str) or not found.top:
        return found
    last = model.question_text(question)
    if names_no_entity(last):
        for triple in (found.top[0].triple, *found.candidates):  # the best-attended entity of the earlier turns
            resolved = model.resolved_question(question, triple.name)
            if resolved != last:
                return retrieve_once(model, resolved, tokens, k, rerank=rerank)
    if sum(m["role"] == "user" for m in model.messages_for(question)) > 1:
        return retrieve_once(model, last, tokens, k, rerank=rerank)  # names its own entity
    return found


def retrieve_once(model: "KBLaMModel", question, tokens: KBTokens, k: int | None, *, rerank: bool) -> Retrieval:
    """One scores-only prefill of ``question`` and what it selects."""
    cfg = model.config
    ids = model.prompt_ids(question)
    ctx = model.kb_context(tokens, record=True, scores_only=True)
    ctx.row_weights = model._history_weights(question, int(ids.shape[1]))
    with torch.no_grad(), use_kb(ctx):
        model.backbone(input_ids=ids, attention_mask=torch.ones_like(ids))
    result = GenerationResult(text="", triples=tokens.triples)
    fill_scores(cfg.score_layers, result, ctx)
    probs = layer_probs(cfg.score_layers, ctx)
    candidates = top_triples(probs, max(k or 1, AGREEMENT_TOP_K))  # [1, c], attention order
    cosines = model.key_agreement([question], tokens.triples, probs, candidates)
    policy = model.refusal_policy
    refuse = policy.refuses(policy.scores(probs, [question], tokens.triples, cosines)[0])
    positions = list(range(candidates.shape[1]))
    if rerank:
        # attention picks the candidates, the sentence encoder orders them (stable sort)
        positions = torch.argsort(-cosines[0], stable=True).tolist()
    agreement = [float(cosines[0, i]) for i in positions]
    if k is None:
        k = asked_count(agreement, cfg.extra_fact_margin, cfg.max_facts)
    top = [TripleScore(tokens.triples[int(candidates[0, i])], float(result.scores[int(candidates[0, i])]))
           for i in positions[:k]]
    return Retrieval(top, result.null_score, refuse, agreement[:k],
                     tuple(tokens.triples[int(i)] for i in candidates[0].tolist()), result.scores,
                     result.layer_scores)


def index_candidates(model: "KBLaMModel", messages, tokens: KBTokens) -> KBTokens:
    """The full attention path over an indexed KB: the knowledge tokens of the retrieval
    pass's candidates (attention is exact over them; the rest of the KB gets none)."""
    found = retrieve_once(model, messages, tokens, None, rerank=False)
    rows = torch.nonzero(found.scores > 0).flatten()
    return KBTokens(tokens.version, tuple(tokens.triples[int(i)] for i in rows), tokens.keys[rows],
                    tokens.values[rows])


@torch.no_grad()
def retrieve_batch(model: "KBLaMModel", questions: Sequence[str | Messages], kb: "KBLike", *, batch_size: int,
                   return_refusal_scores: bool):
    """Left-padded scores-only prefills (see :meth:`KBLaMModel.retrieve_batch`)."""
    tokens = model.encode_kb(kb)
    n = len(tokens) if tokens is not None else 0
    if n == 0:
        empty = (torch.zeros(len(questions), 0), torch.zeros(len(questions)))
        return (*empty, torch.full((len(questions),), float("inf"))) if return_refusal_scores else empty
    device = next(model.backbone.parameters()).device
    policy = model.refusal_policy
    all_scores, all_null, all_refuse = [], [], []
    for lo in range(0, len(questions), batch_size):
        seqs = [model.prompt_ids(q)[0] for q in questions[lo:lo + batch_size]]
        width = max(len(x) for x in seqs)
        pad = model.tokenizer.pad_token_id
        ids = torch.full((len(seqs), width), pad, dtype=torch.long, device=device)
        mask = torch.zeros_like(ids)
        for i, x in enumerate(seqs):
            ids[i, width - len(x):] = x
            mask[i, width - len(x):] = 1
        ctx = model.kb_context(tokens, record=True, scores_only=True)
        with use_kb(ctx):
            model.backbone(input_ids=ids, attention_mask=mask)
        probs = layer_probs(model.config.score_layers, ctx)  # [B, L, N + 1]
        mass = probs.mean(1)
        all_scores.append(mass[:, :n])
        all_null.append(mass[:, n])
        all_refuse.append(policy.scores(probs, questions[lo:lo + batch_size], tokens.triples))
    if return_refusal_scores:
        return torch.cat(all_scores), torch.cat(all_null), torch.cat(all_refuse)
    return torch.cat(all_scores), torch.cat(all_null)
