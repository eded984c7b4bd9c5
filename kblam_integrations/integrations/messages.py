"""The chat messages a backbone's template receives, whichever framework they came from."""

from __future__ import annotations

from typing import Sequence

__all__ = ["prepare_messages"]


def prepare_messages(messages: Sequence[dict[str, str]], system_prompt: str | None = None) -> list[dict[str, str]]:
    """Final chat messages for the backbone's template.

    Raises :class:`KBValidationError` for an empty list; merges consecutive messages of the
    same role (many chat templates require alternating roles); puts ``system_prompt``
    first when the conversation has no system message (``None``: the model's default).
    """
    from ..errors import KBValidationError

    if not messages:
        raise KBValidationError("at least one message is required", field="messages")
    merged: list[dict[str, str]] = []
    for m in messages:
        if merged and merged[-1]["role"] == m["role"]:
            merged[-1] = {"role": m["role"], "content": f"{merged[-1]['content']}\n\n{m['content']}"}
        else:
            merged.append({"role": m["role"], "content": m["content"]})
    if system_prompt is not None and merged[0]["role"] != "system":
        merged.insert(0, {"role": "system", "content": system_prompt})
    return merged
