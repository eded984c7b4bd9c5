"""The backbone's tokenizer without its weights, for token counting (``get_num_tokens``, ``trim_messages``).

LangChain's fallback counts GPT-2 tokens, which needs a download and is wrong for any
other backbone; offline it counts nothing, so ``trim_messages(token_counter=llm)`` never
trims. Here the backbone's own tokenizer is used: the loaded model's if there is one,
otherwise the tokenizer alone (a few MB; no model weights are read).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, Sequence

__all__ = ["backbone_tokenizer", "chat_token_count", "runner_tokenizer"]


@functools.lru_cache(maxsize=8)
def backbone_tokenizer(backbone: str) -> Any:
    """The tokenizer of a backbone spec (see :func:`~kblam_integrations.settings.resolve_backbone`), cached."""
    from transformers import AutoTokenizer

    from ..errors import ModelNotFoundError
    from ..settings import resolve_backbone

    source = resolve_backbone(backbone)
    try:
        if source.gguf_file:
            from ..model.backbone import _converted_dir

            converted = _converted_dir(source)  # written by the first model load; much faster to read
            if (converted / "tokenizer_config.json").is_file():
                return AutoTokenizer.from_pretrained(converted)
            return AutoTokenizer.from_pretrained(source.path, gguf_file=source.gguf_file)
        return AutoTokenizer.from_pretrained(source.path)
    except OSError as exc:
        raise ModelNotFoundError(f"cannot load the tokenizer of backbone {source.name!r}: {exc}") from exc


def runner_tokenizer(runner: Any) -> Any:
    """The tokenizer for a :class:`~.runner.KBLaMRunner`: the loaded model's, else the backbone's."""
    model = runner.model
    if model is not None:
        return model.tokenizer
    spec = runner.spec
    if spec is None or spec.backbone is None:  # backbone named only inside the checkpoint
        return runner.load_model().tokenizer
    return backbone_tokenizer(spec.backbone)


def chat_token_count(tokenizer: Any, messages: Sequence[Mapping[str, str]]) -> int:
    """Tokens of ``messages`` rendered with the tokenizer's chat template (without the generation prompt)."""
    ids = tokenizer.apply_chat_template([dict(m) for m in messages], tokenize=True, add_generation_prompt=False)
    if isinstance(ids, Mapping):  # BatchEncoding on recent transformers
        ids = ids["input_ids"]
    return len(ids)
