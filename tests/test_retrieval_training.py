"""Fast retrieval training: cached query features, the scores-only pass and the standardised heads."""

from __future__ import annotations

import json
import random

import pytest
import torch

from kblam_integrations.attention.context import use_kb
from kblam_integrations.model.families import attention_modules
from kblam_integrations.kb.triple import Triple
from kblam_integrations.training.query_features import extract_query_features
from kblam_integrations.training.retrieval_phase import (
    RetrievalSampler, StandardisedQueryHeads, retrieval_logits, retrieval_loss, train_retrieval_phase)
from kblam_integrations.training.synthetic import QAExample

from .conftest import tiny_chat_kblam

QUESTIONS = ["Who?", "Where is Zed based today?", "What is the founding year of Quill?", "Why"]


def _reference_features(model, questions, layers):
    """Plain per-question forwards: the mean attention input over the prompt, per layer."""
    mods, cap, out = attention_modules(model.backbone), {}, []
    hooks = [mods[l].register_forward_pre_hook(
        lambda m, a, k, l=l: cap.__setitem__(l, k["hidden_states"][0].float().mean(0)), with_kwargs=True)
        for l in layers]
    try:
        for q in questions:
            with torch.no_grad():
                model.backbone(input_ids=model.prompt_ids(q))
            out.append(torch.stack([cap[l] for l in layers]))
    finally:
        for h in hooks:
            h.remove()
    return torch.stack(out)


def test_prefix_cached_features_equal_plain_forwards():
    model = tiny_chat_kblam()
    layers = model.config.kb_layers
    feats = extract_query_features(model, QUESTIONS, layers, batch_size=3, progress=False).float()
    ref = _reference_features(model, QUESTIONS, layers)
    assert feats.shape == (len(QUESTIONS), len(layers), model.config.hidden_size)
    torch.testing.assert_close(feats, ref, atol=2e-3, rtol=2e-3)  # fp16 storage


def test_scores_only_pass_keeps_outputs_and_scores_the_prompt_mean():
    model = tiny_chat_kblam()
    kb = [Triple("Zed", "location", "Port Alvessa"), Triple("Quill", "founding year", "1987"),
          Triple("Mara", "founder", "Ida Holm")]
    tokens = model.encode_kb(kb)
    ids = model.prompt_ids(QUESTIONS[1])
    with torch.no_grad():
        base = model.backbone(input_ids=ids).logits
        ctx = model.kb_context(tokens, record=True, scores_only=True)
        with use_kb(ctx):
            scored = model.backbone(input_ids=ids).logits
    assert torch.equal(base, scored)
    # expected: softmax over [triples; null] of the KB logits averaged over prompt rows, mean over heads
    layer = model.config.kb_layers[-1]
    feats = _reference_features(model, [QUESTIONS[1]], [layer])[0, 0]
    cfg = model.config
    q = model.kb_queries[str(layer)](feats).view(cfg.num_attention_heads, cfg.head_dim)
    j = cfg.kb_layers.index(layer)
    keys = torch.cat([tokens.keys[:, j].float(), model.adapters.null_token()[0][:, j].float()])
    keys = keys.view(len(kb) + 1, cfg.num_attention_heads, cfg.head_dim)
    expected = torch.softmax(torch.einsum("hd,nhd->hn", q, keys) * cfg.head_dim ** -0.5, -1).mean(0)
    torch.testing.assert_close(ctx.records[layer].mean_mass()[0], expected, atol=2e-3, rtol=1e-2)


def test_standardised_heads_fold_back_exactly():
    model = tiny_chat_kblam()
    layers = model.config.score_layers
    feats = torch.randn(16, len(layers), model.config.hidden_size) * 0.05 + 3.0
    heads = StandardisedQueryHeads(model, layers, feats)
    with torch.no_grad():
        heads.weight.add_(torch.randn_like(heads.weight))
        expected = heads(feats)
        heads.fold_into(model)
        folded = torch.stack([model.kb_queries[str(l)](feats[:, i]) for i, l in enumerate(layers)], dim=1)
    torch.testing.assert_close(folded, expected, atol=1e-3, rtol=1e-3)


def test_retrieval_phase_learns_to_pick_the_asked_triple_and_to_refuse():
    """Features that encode the asked entity linearly: training must beat chance clearly."""
    torch.manual_seed(0)
    model = tiny_chat_kblam()
    layers = model.config.score_layers
    names = [f"E{i}" for i in range(40)]
    triples = [Triple(n, p, f"v{i}{p[0]}") for i, n in enumerate(names) for p in ("location", "founder")]
    key_emb, _ = model.encoder.embed_triples(triples)
    proj = torch.randn(key_emb.shape[1], model.config.hidden_size)
    questions, feats = [], []
    for t, e in zip(triples, key_emb):
        for _ in range(3):
            questions.append(QAExample(f"{t.property} of {t.name}?", t.value, (t,), "simple", ((t.name, t.property),)))
            feats.append(e @ proj + 0.1 * torch.randn(model.config.hidden_size))
    feats = torch.stack(feats)[:, None].expand(-1, len(layers), -1).contiguous()
    sampler = RetrievalSampler(triples, questions, feats)

    def accuracy(refusal: float) -> float:
        rng = random.Random(1)
        accs = []
        with torch.no_grad():
            for _ in range(5):
                b = sampler.sample(rng, 16, 32, refusal)
                q = torch.stack([model.kb_queries[str(l)](b.features[:, i]) for i, l in enumerate(layers)], dim=1)
                accs.append(retrieval_loss(retrieval_logits(model, q, key_emb[b.rows], layers), b.targets)[1])
        return sum(accs) / len(accs)

    before = accuracy(0.3)
    train_retrieval_phase(model, sampler, key_emb, steps=150, batch_size=16, kb_sizes=[16, 32], lr=3e-3,
                          refusal_fraction=0.3)
    after = accuracy(0.3)
    assert after > 0.5 and after > before + 0.4, (before, after)  # chance: ~0.03


@pytest.mark.slow
def test_trainer_runs_a_cached_phase_on_the_real_stack_and_resumes(tmp_path):
    from kblam_integrations.model.kblam_model import KBLaMModel
    from kblam_integrations.training.trainer import Phase, TrainConfig, train

    cfg = TrainConfig(output_dir=str(tmp_path / "run"), data_seeds=[0, 1], train_entities=6, questions=24,
                      retrieval_layers=[12, 27], log_every=5,
                      phases=[Phase("retrieval", steps=10, cached=True, objective="mixture", batch_size=8,
                                    kb_sizes=[8, 16], lr=1e-3)])
    final = train(cfg, progress=False)
    cache = list((tmp_path / "run" / "cache").glob("query-features-mean-*.safetensors"))
    assert len(cache) == 2  # one per pool
    log = [json.loads(l) for l in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [5, 10]
    model = KBLaMModel.from_pretrained(final)
    assert model.config.score_layers == [12, 27]
    assert model.config.inject_values is False  # no LM phase ran: pure mode must not inject untrained values
    assert model.kb_queries["12"].bias.abs().sum() > 0  # the standardisation was folded in
    assert train(cfg, progress=False) == final  # resume: nothing left to do


def test_batched_left_padded_retrieval_equals_one_question_at_a_time():
    """Padding rows must not enter the prompt mean (a bug that once cost 30 points of top-1)."""
    model = tiny_chat_kblam()
    kb = [Triple("Zed", "location", "Port Alvessa"), Triple("Quill", "founding year", "1987"),
          Triple("Mara", "founder", "Ida Holm")]
    tokens = model.encode_kb(kb)
    batch_scores, batch_null = model.retrieve_batch(QUESTIONS, tokens)
    for i, q in enumerate(QUESTIONS):
        scores, null = model.retrieve_batch([q], tokens)
        torch.testing.assert_close(batch_scores[i], scores[0], atol=1e-4, rtol=1e-3)
        torch.testing.assert_close(batch_null[i], null[0], atol=1e-4, rtol=1e-3)


def test_refusal_classifier_separates_and_round_trips_through_the_config(tmp_path):
    from kblam_integrations.model.config import KBLaMConfig
    from kblam_integrations.model.refusal import RefusalClassifier, refusal_features

    torch.manual_seed(0)
    n, layers = 20, 3
    answerable = torch.softmax(torch.randn(64, layers, n + 1) + torch.nn.functional.one_hot(
        torch.randint(0, n, (64,)), n + 1)[:, None, :] * 4, -1)
    unanswerable = torch.softmax(torch.randn(64, layers, n + 1) + torch.nn.functional.one_hot(
        torch.full((64,), n), n + 1)[:, None, :] * 2, -1)
    x = refusal_features(torch.cat([answerable, unanswerable]), n)
    y = torch.cat([torch.zeros(64), torch.ones(64)]).bool()
    clf = RefusalClassifier.fit(x, y)
    assert (clf.refuse(x) == y).float().mean() > 0.95
    cfg = KBLaMConfig(refusal_classifier=clf.to_dict())
    cfg.save(tmp_path / "c.json")
    again = RefusalClassifier(**KBLaMConfig.load(tmp_path / "c.json").refusal_classifier)
    assert torch.equal(again.refuse(x), clf.refuse(x))


def test_key_agreement_features_append_the_top1_and_best_cosines():
    from kblam_integrations.model.refusal import key_agreement, refusal_features, top_triples

    probs = torch.softmax(torch.randn(3, 2, 6), -1)
    cos = torch.tensor([[0.2, 0.9, 0.1], [0.8, 0.3, 0.5], [-0.1, -0.2, 0.0]])
    base = refusal_features(probs, 5)
    both = refusal_features(probs, 5, cos, "attention+agreement")
    assert both.shape == (3, base.shape[1] + 2)
    assert torch.equal(both[:, :-2], base)
    assert torch.allclose(both[:, -2], cos[:, 0]) and torch.allclose(both[:, -1], torch.tensor([0.9, 0.8, 0.0]))
    compact = refusal_features(probs, 5, cos, "agreement")  # null mass, log size, best cosine
    assert compact.shape == (3, 3)
    assert torch.allclose(compact[:, 0], probs.mean(1)[:, -1]) and torch.allclose(compact[:, 2], both[:, -1])
    with pytest.raises(ValueError, match="key_cosines"):
        refusal_features(probs, 5, None, "agreement")
    with pytest.raises(ValueError, match="feature set"):
        refusal_features(probs, 5, cos, "everything")
    top = top_triples(probs, k=3)  # ranked by the layer-mean mass, null column excluded
    assert torch.equal(top, probs.mean(1)[:, :-1].topk(3).indices)
    q = torch.randn(3, 8)
    keys = torch.stack([q * 2, -q, torch.randn(3, 8)], dim=1)
    agree = key_agreement(q, keys)
    assert torch.allclose(agree[:, 0], torch.ones(3)) and torch.allclose(agree[:, 1], -torch.ones(3))


def test_refusal_reads_key_agreement_of_the_attended_triples():
    """A classifier that only trusts key agreement refuses a question no KB key matches."""
    from kblam_integrations.model.refusal import RefusalClassifier

    model = tiny_chat_kblam()
    kb = [("Acme", "founder", "Ada"), ("Acme", "location", "Oslo"), ("Borealis", "founder", "Bo")]
    tokens = model.encode_kb(kb)
    model.config.refusal_classifier = None
    assert model.refusal_classifier is None and model.refusal_threshold == model.config.refusal_ratio
    # refuse unless some attended key's embedding agrees with the question (cosine >= 0.9)
    model.config.refusal_classifier = RefusalClassifier(weight=[0.0, 0.0, -40.0], bias=36.0,
                                                        features="agreement").to_dict()
    assert model.refusal_classifier.features == "agreement" and model.refusal_threshold == 0.5
    matching = tokens.triples[1].key_text  # the hash encoder embeds identical text identically
    _, _, refusal = model.retrieve_batch([matching, "Who painted the harbour at night?"], tokens,
                                         return_refusal_scores=True)
    assert refusal[0] < 0.5 < refusal[1]
    assert model.generate("Who painted the harbour at night?", kb=tokens, mode="grounded",
                          max_new_tokens=2).text == model.config.refusal
    # a classifier whose weights do not fit the features fails loudly
    model.config.refusal_classifier = RefusalClassifier(weight=[0.0] * 6, bias=0.0,
                                                        features="agreement").to_dict()
    with pytest.raises(ValueError, match="features"):
        model.retrieve_batch([matching], tokens, return_refusal_scores=True)


def test_pure_mode_without_value_injection_applies_the_refusal_rule_in_one_pass():
    from transformers import TextIteratorStreamer

    from kblam_integrations.model.refusal import RefusalClassifier

    model = tiny_chat_kblam()
    tokens = model.encode_kb([("Acme", "founder", "Ada"), ("Acme", "location", "Oslo")])
    model.config.value_source = "adapter"  # the paper's one-vector values (value blocks are tested apart)
    model.config.inject_values = False  # scores-only pass: the answer cannot refuse by itself

    def classifier(bias: float) -> dict:  # constant decision: refuse iff bias > 0
        return RefusalClassifier(weight=[0.0] * 3, bias=bias, features="agreement").to_dict()

    model.config.refusal_classifier = classifier(20.0)
    calls = []
    original = model.backbone.forward
    model.backbone.forward = lambda *a, **kw: calls.append(1) or original(*a, **kw)
    res = model.generate("Who founded Acme?", kb=tokens, mode="kblam", max_new_tokens=6)
    assert res.text == model.config.refusal
    assert len(calls) == 1  # the prefill decided: no second pass, no further tokens
    assert res.scores is not None and res.scores.shape == (2,)  # the attention is still reported

    streamer = TextIteratorStreamer(model.tokenizer, skip_prompt=True, skip_special_tokens=True)
    model.generate("Who founded Acme?", kb=tokens, mode="kblam", max_new_tokens=6, streamer=streamer)
    assert "".join(streamer).strip() == model.config.refusal

    model.config.refusal_classifier = classifier(-20.0)
    answered = model.generate("Who founded Acme?", kb=tokens, mode="kblam", max_new_tokens=6)
    assert answered.text != model.config.refusal
    # with value injection the answer itself carries the refusal: no gate
    model.config.inject_values = True
    model.config.refusal_classifier = classifier(20.0)
    assert model.generate("Who founded Acme?", kb=tokens, mode="kblam", max_new_tokens=6).text != \
        model.config.refusal


def test_grounded_mode_orders_the_attended_candidates_by_key_agreement():
    from kblam_integrations.model.refusal import RefusalClassifier

    model = tiny_chat_kblam()
    kb = [("Acme", "founder", "Ada"), ("Acme", "location", "Oslo"), ("Borealis", "founder", "Bo"),
          ("Borealis", "motto", "Onwards")]
    tokens = model.encode_kb(kb)
    model.config.refusal_classifier = RefusalClassifier(weight=[0.0] * 3, bias=-20.0, features="agreement").to_dict()
    question = tokens.triples[2].key_text  # the hash encoder embeds identical text identically: cosine 1
    attention_order = [s.triple for s in model.retrieve(question, tokens, k=3)[0]]
    res = model.generate(question, kb=tokens, mode="grounded", grounded_k=3, max_new_tokens=2)
    assert res.triples[0] == tokens.triples[2]  # first in the prompt and in the answer's opening
    assert set(res.triples) <= set(s.triple for s in model.retrieve(question, tokens, k=5)[0])
    model.config.grounded_rerank = False
    res = model.generate(question, kb=tokens, mode="grounded", grounded_k=3, max_new_tokens=2)
    assert list(res.triples) == attention_order
