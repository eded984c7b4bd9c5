"""Pure mode's value blocks: a selected triple's own backbone states, attended by the prompt."""

from __future__ import annotations

import pytest
import torch

from kblam_integrations.attention.context import KBContext, use_kb
from kblam_integrations.attention.value_blocks import build_value_blocks
from kblam_integrations.encoding.value_states import TripleStates, ValueStateEncoder
from kblam_integrations.kb.triple import Triple

from .conftest import tiny_kblam


class _Tok:
    """Whitespace tokenizer over the tiny backbone's 128-token vocabulary."""

    pad_token_id = 0

    def __call__(self, text, add_special_tokens=False, **_):
        return {"input_ids": [1 + (sum(map(ord, w)) % 120) for w in text.split()]}


def _context(blocks, like):
    empty = like[:0]
    return KBContext(keys=empty, values=empty, layer_map={}, query_projections={}, kb_len=0, value_blocks=blocks)


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_a_block_before_the_prompt_equals_its_text_as_a_prefix(family):
    """One block seen from position 0 sits at positions -m..-1: by RoPE's relative positions the
    prompt's logits are exactly those of the block's text followed by the prompt."""
    model = tiny_kblam(family)
    bb = model.backbone
    enc = ValueStateEncoder(bb, _Tok(), lambda t: f"{t.name} {t.property} {t.value}")
    triple = Triple("Veltrano Dynamics", "founder", "Marisol Okonkwo")
    states = enc.states([triple])
    block_ids = torch.tensor([_Tok()(f"{triple.name} {triple.property} {triple.value}")["input_ids"]])
    prompt = torch.tensor([[5, 9, 17, 33, 2, 71]])
    layers = list(range(bb.config.num_hidden_layers))
    blocks = build_value_blocks(states, torch.ones(1), 0, layers, bb.get_decoder().rotary_emb)
    with torch.no_grad(), use_kb(_context(blocks, torch.zeros(1, 1, 1))):
        with_block = bb(input_ids=prompt).logits
    prefixed = bb(input_ids=torch.cat([block_ids, prompt], dim=1)).logits[:, block_ids.shape[1]:]
    torch.testing.assert_close(with_block, prefixed, atol=2e-4, rtol=2e-4)


def test_rows_before_visible_from_are_the_base_model_and_later_rows_are_not():
    model = tiny_kblam("llama")
    bb = model.backbone
    enc = ValueStateEncoder(bb, _Tok(), lambda t: t.value)
    states = enc.states([Triple("A", "b", "some long value text here")])
    prompt = torch.tensor([[5, 9, 17, 33, 2, 71]])
    blocks = build_value_blocks(states, torch.ones(1), 3, list(range(4)), bb.get_decoder().rotary_emb)
    base = bb(input_ids=prompt).logits
    with torch.no_grad(), use_kb(_context(blocks, torch.zeros(1, 1, 1))):
        out = bb(input_ids=prompt).logits
    torch.testing.assert_close(out[:, :3], base[:, :3])
    assert not torch.allclose(out[:, 3:], base[:, 3:], atol=1e-3)


def test_block_log_prior_mixes_two_triples_and_a_certain_one_wins():
    """With the whole prior on one of two blocks, the output equals attending to that block alone."""
    model = tiny_kblam("llama")
    bb = model.backbone
    enc = ValueStateEncoder(bb, _Tok(), lambda t: t.value)
    a, b = enc.states([Triple("A", "p", "alpha beta"), Triple("B", "p", "gamma delta epsilon")])
    prompt = torch.tensor([[5, 9, 17, 33]])
    rot = bb.get_decoder().rotary_emb
    only_a = build_value_blocks([a], torch.ones(1), 0, list(range(4)), rot)
    mixed = build_value_blocks([a, b], torch.tensor([1.0, 0.0]), 0, list(range(4)), rot)
    with torch.no_grad():
        with use_kb(_context(only_a, torch.zeros(1, 1, 1))):
            ref = bb(input_ids=prompt).logits
        with use_kb(_context(mixed, torch.zeros(1, 1, 1))):
            out = bb(input_ids=prompt).logits
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)


def test_value_states_depend_only_on_their_triple_and_are_cached():
    model = tiny_kblam("llama")
    enc = ValueStateEncoder(model.backbone, _Tok(), lambda t: t.value, capacity=2)
    t1, t2, t3 = Triple("A", "p", "one two"), Triple("B", "p", "three four five"), Triple("C", "p", "six")
    alone = enc.states([t1])[0]
    together = enc.states([t2, t1])
    assert enc.computed == 2  # t1 came from the cache
    torch.testing.assert_close(together[1].keys, alone.keys)
    fresh = ValueStateEncoder(model.backbone, _Tok(), lambda t: t.value).states([t3, t1])[1]
    torch.testing.assert_close(fresh.keys, alone.keys, atol=1e-5, rtol=1e-5)
    enc.states([t3])
    assert len(enc._cache) == 2  # LRU bound
    assert isinstance(alone, TripleStates) and alone.length == 2


def test_degenerate_answers_are_flagged():
    from kblam_integrations.training.evaluate import is_degenerate

    # the joint-phase probe's output quoted in the issue, and a looping sentence
    assert is_degenerate("The Udth Initiative is a non-of-of-of-of-of-of-of")
    assert is_degenerate("the company the company the company the company the company the company")
    assert not is_degenerate("The price of The Napur is $2,041.")
    assert not is_degenerate("The purpose of Selugrad Systems is to bring wholesome pendulums to poets in Bomirwyn.")


@pytest.mark.slow
def test_pure_mode_answers_from_value_blocks_without_looping():
    """The shipped model in pure mode: 50 held-out questions at KB 100, no degenerate answer,
    and most answers right (the eval sweep measures it on all 300)."""
    from pathlib import Path

    from kblam_integrations.model.kblam_model import KBLaMModel
    from kblam_integrations.training.evaluate import evaluate, is_degenerate, load_eval_file

    model = KBLaMModel.from_pretrained()
    triples, questions = load_eval_file(Path(__file__).parent / "data" / "synthetic_heldout_777.json")
    metrics, records = evaluate(model, triples, questions[:50], kb_size=100, mode="kblam", max_new_tokens=32,
                                return_records=True)
    answers = [r["answer"] for r in records]
    assert len(answers) == 50
    assert not [a for a in answers if is_degenerate(a)]
    assert metrics["answer_accuracy"] >= 0.5
