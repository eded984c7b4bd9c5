"""Streaming one generation: ``generate`` in a worker thread feeding transformers' ``TextIteratorStreamer``.

The KB context is a contextvar that ``generate`` sets inside that thread; the worker runs
in a copy of the caller's context and under :func:`~.serial_calls.model_lock`.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from .serial_calls import model_lock

if TYPE_CHECKING:  # pragma: no cover
    from ..encoding.manager import KBTokens
    from ..model.kblam_model import GenerationResult, KBLaMModel

logger = logging.getLogger(__name__)

__all__ = ["stream_locked"]


class _StreamText:
    """Turns raw streamed text into pieces whose concatenation equals the final answer.

    ``generate`` strips the answer and cuts it at the first stop string; pieces are
    emitted with leading whitespace dropped and trailing whitespace / a possible stop
    prefix held back until the next piece shows whether they belong to the answer.
    """

    def __init__(self, stop: Sequence[str] | None):
        self.stop = [s for s in (stop or ()) if s]
        self.raw = ""
        self.sent = ""
        self.stopped = False

    def push(self, piece: str) -> str:
        if self.stopped or not piece:
            return ""
        self.raw += piece
        text = self.raw.lstrip()
        hits = [i for i in (text.find(s) for s in self.stop) if i >= 0]
        if hits:
            text = text[: min(hits)]
            self.stopped = True
        else:
            hold = max((k for s in self.stop for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
            text = text[: len(text) - hold]
        text = text.rstrip()
        if len(text) <= len(self.sent):
            return ""
        out = text[len(self.sent):]
        self.sent = text
        return out

    def finish(self, final: str) -> str:
        """What is left to emit so that the pieces add up to ``final``."""
        if final.startswith(self.sent):
            rest = final[len(self.sent):]
            self.sent = final
            return rest
        logger.debug("streamed text %r is not a prefix of the final answer %r", self.sent, final)
        return ""


def stream_locked(model: "KBLaMModel", messages: Sequence[dict[str, str]], tokens: "KBTokens | None", *,
                  stop: Sequence[str] | None = None, **options: Any) -> Iterator["str | GenerationResult"]:
    """Stream one generation: yields text pieces, then the final :class:`GenerationResult`.

    ``generate`` runs in a worker thread (under :func:`model_lock`) feeding a
    ``TextIteratorStreamer``; an error in the worker is re-raised here. The pieces add
    up exactly to ``result.text`` (stripped, cut at the first stop string).
    """
    from transformers import TextIteratorStreamer

    streamer = TextIteratorStreamer(model.tokenizer, skip_prompt=True, skip_special_tokens=True)
    box: dict[str, Any] = {}
    msgs = list(messages)

    def work() -> None:
        try:
            with model_lock(model):
                box["result"] = model.generate(msgs, kb=tokens, stop=list(stop) if stop else None,
                                               streamer=streamer, **options)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
            box["error"] = exc
            streamer.end()

    ctx = contextvars.copy_context()
    worker = threading.Thread(target=ctx.run, args=(work,), name="kblam-stream", daemon=True)
    worker.start()
    text = _StreamText(stop)
    try:
        for piece in streamer:
            out = text.push(piece)
            if out:
                yield out
    finally:
        worker.join()
    if "error" in box:
        raise box["error"]
    result = box["result"]
    rest = text.finish(result.text)
    if rest:
        yield rest
    yield result
