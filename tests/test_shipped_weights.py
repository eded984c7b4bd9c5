"""The shipped adapter weights: load with no argument, retrieve held-out triples, keep the base model intact."""

from __future__ import annotations

import pytest
import torch

from kblam_integrations.model.kblam_model import DEFAULT_WEIGHTS_DIR, KBLaMModel
from kblam_integrations.training.synthetic import SyntheticKBGenerator

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained():
    return KBLaMModel.from_pretrained()


def test_shipped_weights_are_small_fp16_safetensors():
    f = DEFAULT_WEIGHTS_DIR / "kblam_adapters.safetensors"
    assert f.is_file() and f.stat().st_size < 50 * 2**20
    from safetensors import safe_open

    with safe_open(str(f), framework="pt") as st:
        assert all(st.get_slice(k).get_dtype() == "F16" for k in st.keys())


def test_retrieval_on_unseen_entities_beats_chance_by_far(trained):
    gen = SyntheticKBGenerator(split="validation", seed=4242)
    kb = gen.make_kb(12)
    questions = [q for q in gen.make_questions(kb, 30, mix={"simple": 1.0}) if q.triples][:20]
    scores, _ = trained.retrieve_batch([q.question for q in questions], kb)
    top1 = sum(kb[int(s.argmax())] == q.triples[0] for s, q in zip(scores, questions)) / len(questions)
    assert top1 >= 0.7, top1  # chance is 1/len(kb) ~ 0.03; the shipped weights reach ~1.0 here


def test_empty_kb_answers_equal_the_base_model(trained):
    ids = trained.prompt_ids("Name a planet.")
    with torch.no_grad():
        base = trained.backbone.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=10,
                                         do_sample=False, pad_token_id=trained.tokenizer.pad_token_id)
    expected = trained.tokenizer.decode(base[0, ids.shape[1]:], skip_special_tokens=True).strip()
    assert trained.generate("Name a planet.", kb=None, max_new_tokens=10).text == expected


def test_grounded_answers_end_with_the_copied_value(trained):
    """The demo's extracted KB: relation-shaped facts read as sentences, and the answer
    stops at the value instead of elaborating past it."""
    from kblam_integrations.kb.triple import Triple

    kb = [Triple("Marie Curie", "born in", "Warsaw"), Triple("Marie Curie", "won", "the Nobel Prize"),
          Triple("Veltrano Dynamics", "founded by", "Marisol Okonkwo"), Triple("Paris", "capital of", "France")]
    res = trained.generate("Where was Marie Curie born?", kb=kb, mode="grounded", max_new_tokens=24)
    assert res.text == "Marie Curie was born in Warsaw"
    res = trained.generate("Who founded Veltrano Dynamics?", kb=kb, mode="grounded", max_new_tokens=24)
    assert res.text == "Veltrano Dynamics was founded by Marisol Okonkwo"
