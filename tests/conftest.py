"""Shared fixtures: tiny random HF decoders built in code and a deterministic stand-in
for the sentence encoder (so unit tests need neither network nor big models)."""

from __future__ import annotations

import hashlib

import pytest
import torch


class HashSentenceEncoder:
    """Deterministic text -> vector map with the sentence-transformers ``encode`` interface.

    Stands in for MiniLM (third-party), counting how many texts it embedded.
    """

    def __init__(self, dim: int = 32):
        self.dim = dim
        self.calls = 0
        self.texts = 0

    def get_sentence_embedding_dimension(self) -> int:
        return self.dim

    def encode(self, texts, batch_size=32, convert_to_tensor=True, show_progress_bar=False, **_):
        self.calls += 1
        self.texts += len(texts)
        rows = []
        for t in texts:
            seed = int.from_bytes(hashlib.sha1(t.encode()).digest()[:8], "little")
            g = torch.Generator().manual_seed(seed)
            rows.append(torch.randn(self.dim, generator=g))
        return torch.stack(rows) if rows else torch.zeros(0, self.dim)


def tiny_backbone(family: str = "llama", dtype=torch.float32, layers: int = 4):
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    common = dict(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, pad_token_id=0)
    if family == "llama":
        model = LlamaForCausalLM(LlamaConfig(**common))
    elif family == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**common))
    else:
        raise ValueError(family)
    return model.to(dtype).eval().requires_grad_(False)


def tiny_kblam(family: str = "llama", dtype=torch.float32, **overrides):
    from kblam_integrations.model.config import KBLaMConfig
    from kblam_integrations.model.kblam_model import KBLaMModel

    backbone = tiny_backbone(family, dtype)
    cfg = KBLaMConfig.for_backbone(backbone.config, backbone=f"tiny-{family}", encoder="hash", encoder_dim=32,
                                   **{"kb_layer_frequency": 2, **overrides})
    model = KBLaMModel(backbone, None, cfg, HashSentenceEncoder(32))
    return model


def char_tokenizer():
    """A real (fast) HF tokenizer built in code: one token per character, ChatML template, 128 ids."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<|im_start|>", "<|im_end|>", "<unk>"]
    chars = [chr(c) for c in range(32, 127)] + ["\n"]
    chars += [chr(c) for c in range(192, 192 + 128 - len(specials) - len(chars))]
    tok = Tokenizer(models.WordLevel(vocab={t: i for i, t in enumerate(specials + chars)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", eos_token="<|im_end|>",
                                   additional_special_tokens=["<|im_start|>"], chat_template=template)


def tiny_chat_kblam(**overrides):
    """``tiny_kblam()`` (random Llama + hash sentence encoder) with a tokenizer, so it can chat."""
    model = tiny_kblam(**overrides)
    model.tokenizer = char_tokenizer()
    return model


@pytest.fixture(params=["llama", "qwen2"])
def family(request):
    return request.param


@pytest.fixture(scope="session")
def smollm2_kblam():
    """The real default stack (SmolLM2-135M-Instruct + MiniLM), untrained adapters."""
    from kblam_integrations.model.kblam_model import KBLaMModel

    return KBLaMModel.from_backbone()
