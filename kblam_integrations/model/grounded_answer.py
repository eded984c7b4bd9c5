"""Grounded mode's answer step: answer a question from given facts.

Grounded mode (KB attention picks the facts) and the RAG baseline
(:class:`kblam_integrations.baselines.rag.FaissRAG`, a vector index picks them) must
answer the same way, or a comparison of the two measures the answer path instead of
the retrieval. This module is that one answer path: the facts are written as sentences
into the last user message (:func:`~.grounding.grounding_prompt`), the answer starts
with the first fact's opening words (:func:`~.grounding.fact_start`), stops at the end
of the line and ends once the first fact's value is written.
"""

from __future__ import annotations

from typing import Any, Sequence

from ..kb.triple import Triple
from .grounding import fact_start, grounding_prompt


def grounded_messages(model, messages, facts: Sequence[Triple]) -> list[dict[str, str]]:
    """``messages`` (or a question string) with the facts written into the last user message."""
    grounded = [dict(m) for m in model.messages_for(messages)]
    users = [i for i, m in enumerate(grounded) if m["role"] == "user"]
    last_user = users[-1] if users else len(grounded) - 1
    grounded[last_user]["content"] = grounding_prompt(grounded[last_user]["content"], list(facts))
    return grounded


def answer_rules(model, facts: Sequence[Triple], stop: Sequence[str] | None = None
                 ) -> tuple[str | None, list[str], list[str]]:
    """``(answer_prefix, stop, end)`` for an answer from ``facts`` (the first fact leads).

    With the prefix the answer continues the first fact's line: a small backbone would
    otherwise recite the other facts, one per line, or elaborate past the copied value,
    so it stops at a newline and ends with the value.
    """
    stop = list(stop or [])
    if not facts or not model.config.grounded_answer_prefix:
        return None, stop, []
    return fact_start(facts[0]), [*stop, "\n"], [facts[0].value.rstrip(".")]


def answer_from_facts(model, messages, facts: Sequence[Triple], *, asked: int = 1, max_new_tokens: int = 64,
                      temperature: float = 0.0, stop: Sequence[str] | None = None, streamer: Any = None,
                      top_k_kb: int | None = None, seed: int | None = None):
    """Answer ``messages`` (or a question string) from ``facts``, best first, the way grounded mode does.

    All ``facts`` are written into the prompt; the answer states the first ``asked`` of them
    in turn (two-fact questions ask for two): each starts with its fact's opening words,
    the backbone copies the value, and it ends there. Returns the
    :class:`~.kblam_model.GenerationResult` of ``model._generate`` with ``triples`` set to
    ``facts``; the caller sets ``scores`` and ``mode``. No facts: the plain backbone
    answers the messages unchanged.
    """
    facts = list(facts)
    if not facts:
        return model._generate(model.messages_for(messages), None, use_kb_tokens=False,
                               max_new_tokens=max_new_tokens, temperature=temperature, stop=stop,
                               streamer=streamer, top_k_kb=top_k_kb, seed=seed)
    grounded = grounded_messages(model, messages, facts)
    kwargs = dict(max_new_tokens=max_new_tokens, temperature=temperature, streamer=streamer, top_k_kb=top_k_kb,
                  seed=seed)
    prefix, stop_rules, end = answer_rules(model, facts, stop)
    if prefix is None:
        res = model._generate(grounded, None, use_kb_tokens=False, stop=stop_rules, **kwargs)
        res.triples = tuple(facts)
        return res
    answer, streamed, completion = "", 0, 0
    for fact in facts[:max(1, asked)]:
        prefix, stop_rules, end = answer_rules(model, [fact], stop)
        prefix = f"{answer} {prefix}".strip()
        res = model._generate(grounded, None, use_kb_tokens=False, answer_prefix=prefix, end=end, stop=stop_rules,
                              prefix_streamed=streamed, **kwargs)
        completion += res.completion_tokens
        streamed = len(res.text)
        answer = res.text if res.text.endswith(".") else f"{res.text}."
    if asked > 1:
        res.text = answer
    res.completion_tokens = completion
    res.triples = tuple(facts)
    return res
