"""The real default stack: SmolLM2-135M-Instruct (GGUF wheel) + all-MiniLM-L6-v2 (wheel)."""

from __future__ import annotations

import pytest
import torch

from kblam_integrations.errors import KBValidationError
from kblam_integrations.kb import Triple
from kblam_integrations.model.interpret import plot_attention_heatmap

pytestmark = pytest.mark.slow

KB = [
    Triple("Veltrano Dynamics", "founder", "Marisol Okonkwo"),
    Triple("Veltrano Dynamics", "location", "Port Alvessa"),
    Triple("Quillmark X2", "price", "42 dollars"),
]


def test_empty_kb_logits_equal_the_backbone(smollm2_kblam):
    model = smollm2_kblam
    ids = model.prompt_ids("What is the capital of France?")
    with torch.no_grad():
        base = model.backbone(input_ids=ids).logits
        empty = model(ids, kb=model.encode_kb([])).logits
    assert torch.allclose(base, empty, atol=1e-5)


def test_empty_kb_generation_equals_base_model(smollm2_kblam):
    model = smollm2_kblam
    ids = model.prompt_ids("Name a colour.")
    with torch.no_grad():
        base = model.backbone.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=12,
                                       do_sample=False, pad_token_id=model.tokenizer.pad_token_id)
    base_text = model.tokenizer.decode(base[0, ids.shape[1]:], skip_special_tokens=True).strip()
    assert model.generate("Name a colour.", kb=[], max_new_tokens=12).text == base_text


def test_generate_reports_attention_per_triple(smollm2_kblam, tmp_path):
    result = smollm2_kblam.generate("Who founded Veltrano Dynamics?", kb=KB, max_new_tokens=8)
    assert isinstance(result.text, str) and result.text  # an answer or, untrained, the refusal sentence
    assert result.scores.shape == (len(KB),)
    assert set(result.layer_scores) == set(smollm2_kblam.config.kb_layers)
    top = result.top_k(2)
    assert len(top) == 2 and top[0].score >= top[1].score
    png = tmp_path / "heat.png"
    plot_attention_heatmap(result, png)
    assert png.stat().st_size > 1000


def test_save_and_load_only_the_trained_parts(smollm2_kblam, tmp_path):
    from kblam_integrations.model.kblam_model import KBLaMModel

    model = smollm2_kblam
    out = model.save_pretrained(tmp_path / "ckpt", dtype=torch.float32)
    files = sorted(p.name for p in out.iterdir())
    assert files == ["kblam_adapters.safetensors", "kblam_config.json"]
    size = (out / "kblam_adapters.safetensors").stat().st_size
    assert size < 0.2 * sum(p.numel() * 4 for p in model.backbone.parameters())
    loaded = KBLaMModel.from_pretrained(out)
    assert loaded.backbone is model.backbone  # shared, loaded once
    for k, v in model.trainable_state_dict().items():
        assert torch.equal(v, loaded.trainable_state_dict()[k])


def test_bad_messages_are_typed_errors(smollm2_kblam):
    with pytest.raises(KBValidationError):
        smollm2_kblam.generate([], kb=KB)
    with pytest.raises(KBValidationError):
        smollm2_kblam.generate([{"role": "user", "content": 3}], kb=KB)
