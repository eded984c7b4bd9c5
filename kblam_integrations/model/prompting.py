"""From a question or a conversation to the backbone's prompt: messages, token ids, and the turn
positions the KB query weighs and the value blocks are visible from."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Sequence

import torch

from ..errors import KBValidationError
from .limits import check_prompt_length

if TYPE_CHECKING:
    from .kblam_model import KBLaMModel

Messages = Sequence[dict[str, str]]

# A follow-up's pronoun that stands for the entity of an earlier turn ("its founder").
_POSSESSIVE = re.compile(r"\b(its|their|his|her)\b", re.IGNORECASE)


def names_no_entity(text: str) -> bool:
    """No capitalised word after the first one (nor a number): "And its budget?", not "Who founded Quorvex?"."""
    words = re.findall(r"[\w'&.-]+", text)[1:]
    return not any(w[:1].isupper() or w[:1].isdigit() for w in words if w != "I")


def messages_for(prompt_or_messages: str | Messages, system_prompt: str | None) -> list[dict[str, str]]:
    """Normalise a string or chat messages; adds ``system_prompt`` if none is given."""
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
    if messages[0]["role"] != "system" and system_prompt:
        messages.insert(0, {"role": "system", "content": system_prompt})
    return messages


def prompt_ids(model: "KBLaMModel", prompt_or_messages: str | Messages, *, check_length: bool) -> torch.Tensor:
    """Token ids of the chat-formatted prompt, ending with the assistant header."""
    messages = model.messages_for(prompt_or_messages)
    ids = model.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                              return_dict=True)["input_ids"]
    if check_length:
        check_prompt_length(ids, model.backbone.config)  # before any forward: typed error in ms
    return ids.to(next(model.backbone.parameters()).device)


def question_text(messages: list[dict[str, str]]) -> str:
    """The question itself: the content of the last user message (else of the last message)."""
    users = [m["content"] for m in messages if m["role"] == "user"]
    return users[-1] if users else messages[-1]["content"]


def resolved_question(model: "KBLaMModel", prompt_or_messages: str | Messages, name: str) -> str:
    """The last user message, naming the candidate's entity when only the earlier turns did
    (see :meth:`KBLaMModel.resolved_question`)."""
    question = model.question_text(prompt_or_messages)
    if isinstance(prompt_or_messages, str) or name.lower() in question.lower():
        return question
    earlier = " ".join(m["content"] for m in model.messages_for(prompt_or_messages)[:-1] if m["role"] != "system")
    if name.lower() not in earlier.lower():
        return question
    if _POSSESSIVE.search(question):
        return _POSSESSIVE.sub(f"{name}'s", question, count=1)
    return f"{question.rstrip(' ?.!')} of {name}?"


def template_length(tokenizer, messages) -> int:
    """Tokens of ``messages`` in the chat template, without a generation prompt (0 for none)."""
    if not messages:
        return 0
    ids = tokenizer.apply_chat_template(list(messages), add_generation_prompt=False, return_dict=True)
    return len(ids["input_ids"])


def history_weights(model: "KBLaMModel", question, n_tokens: int) -> torch.Tensor | None:
    """``[1, n_tokens]`` KB-query weights: ``config.history_weight`` for the turns before the last
    user message, 1 for the system prompt and the last turn (None for a single question)."""
    messages = model.messages_for(question)
    users = [i for i, m in enumerate(messages) if m["role"] == "user"]
    if not users or users[-1] == users[0] or model.config.history_weight == 1.0:
        return None
    history_from = model._template_length(messages[:users[0]])
    last_from = model._template_length(messages[:users[-1]])
    w = torch.ones(1, n_tokens)
    w[:, history_from:last_from] = model.config.history_weight
    return w.to(next(model.backbone.parameters()).device)


def visible_from(tokenizer, messages) -> int:
    """Position of the first prompt token after the system turn: value blocks are seen from there."""
    return template_length(tokenizer, messages[:1]) if messages and messages[0]["role"] == "system" else 0
