"""Rectangular attention on tiny random Llama and Qwen2 decoders built in code."""

from __future__ import annotations

import pytest
import torch

from kblam_integrations.attention import use_kb
from kblam_integrations.kb import Triple

from .conftest import tiny_kblam

TRIPLES = [Triple(f"Entity {i}", p, f"value {i} {p}") for i in range(6) for p in ("founder", "location")]


def _ids(batch=2, length=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, 128, (batch, length), generator=g)


def test_empty_kb_is_exactly_the_base_model(family):
    model = tiny_kblam(family)
    ids = _ids()
    with torch.no_grad():
        base = model.backbone(input_ids=ids).logits
        with_empty = model(ids, kb=model.encode_kb([])).logits
        without = model(ids).logits
    assert torch.allclose(base, with_empty, atol=1e-5)
    assert torch.allclose(base, without, atol=1e-5)


def test_kb_changes_the_output(family):
    model = tiny_kblam(family)
    ids = _ids()
    with torch.no_grad():
        base = model.backbone(input_ids=ids).logits
        kb = model(ids, kb=model.encode_kb(TRIPLES)).logits
    assert (base - kb).abs().max() > 1e-3


def test_knowledge_tokens_are_independent_of_other_triples(family):
    model = tiny_kblam(family, kb_scale_factor=None)
    t = TRIPLES[0]
    alone = model.encode_kb([t])
    crowd = model.encode_kb(TRIPLES)
    i = crowd.triples.index(t)
    # same up to float rounding of batched matmuls (tokens are stored in fp16)
    assert torch.allclose(alone.keys[0].float(), crowd.keys[i].float(), atol=2e-3)
    assert torch.allclose(alone.values[0].float(), crowd.values[i].float(), atol=2e-3)
    # The KB-part attention scores for t (first KB layer, whose inputs do not depend on the KB)
    ids = _ids()
    first = model.config.kb_layers[0]
    scores = []
    for tokens in (alone, crowd):
        ctx = model.kb_context(tokens, keep_logits=True)
        with torch.no_grad(), use_kb(ctx):
            model.backbone(input_ids=ids)
        col = tokens.triples.index(t)
        scores.append(ctx.records[first].logits[..., col])
    assert torch.allclose(scores[0], scores[1], atol=1e-5)


def test_kb_score_shift_tracks_kb_size(family):
    model = tiny_kblam(family, kb_scale_factor=100.0)
    ctx_small = model.kb_context(model.encode_kb(TRIPLES[:2]))
    ctx_big = model.kb_context(model.encode_kb(TRIPLES))
    assert ctx_small.score_shift == pytest.approx(torch.log(torch.tensor(100.0 / 2)).item())
    assert ctx_big.score_shift < ctx_small.score_shift


def test_chunked_kb_attention_matches_single_pass(family):
    model = tiny_kblam(family)
    ids = _ids()
    tokens = model.encode_kb(TRIPLES)
    with torch.no_grad():
        full = model(ids, context=model.kb_context(tokens)).logits
        model.config.chunk_size = 5
        chunked = model(ids, context=model.kb_context(tokens)).logits
    assert torch.allclose(full, chunked, atol=1e-5)


def test_top_k_pruning(family):
    model = tiny_kblam(family)
    ids = _ids()
    tokens = model.encode_kb(TRIPLES)
    n_tokens = len(tokens) + 1  # + null token
    with torch.no_grad():
        full = model(ids, context=model.kb_context(tokens)).logits
        same = model(ids, context=model.kb_context(tokens, top_k=n_tokens)).logits
        pruned = model(ids, context=model.kb_context(tokens, top_k=2)).logits
    assert torch.allclose(full, same, atol=1e-5)
    assert not torch.allclose(full, pruned, atol=1e-4)


def test_generate_with_kv_cache_matches_full_recompute(family):
    model = tiny_kblam(family)
    ids = _ids(batch=1)
    tokens = model.encode_kb(TRIPLES)
    ctx = model.kb_context(tokens)
    with torch.no_grad(), use_kb(ctx):
        out = model.backbone.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=6,
                                      do_sample=False, pad_token_id=0)
    # Recompute each step from scratch (no cache): same greedy tokens.
    seq = ids
    for _ in range(6):
        with torch.no_grad():
            logits = model(seq, context=model.kb_context(tokens), use_cache=False).logits
        seq = torch.cat([seq, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(out, seq)


def test_left_padded_batch_matches_single_examples(family):
    model = tiny_kblam(family)
    tokens = model.encode_kb(TRIPLES)
    a, b = _ids(1, 10, seed=1), _ids(1, 6, seed=2)
    batch = torch.zeros(2, 10, dtype=torch.long)
    mask = torch.zeros(2, 10, dtype=torch.long)
    batch[0], mask[0] = a[0], 1
    batch[1, 4:], mask[1, 4:] = b[0], 1
    with torch.no_grad():
        together = model(batch, attention_mask=mask, context=model.kb_context(tokens)).logits
        la = model(a, context=model.kb_context(tokens)).logits
        lb = model(b, context=model.kb_context(tokens)).logits
    assert torch.allclose(together[0], la[0], atol=1e-4)
    assert torch.allclose(together[1, 4:], lb[0], atol=1e-4)


def test_bf16_backbone_runs_and_stays_close():
    m32 = tiny_kblam("llama")
    m16 = tiny_kblam("llama", dtype=torch.bfloat16)
    m16.load_state_dict({k: v.to(torch.bfloat16) for k, v in m32.state_dict().items()}, strict=False)
    ids = _ids()
    t32 = m32.encode_kb(TRIPLES)
    t16 = m16.encode_kb(TRIPLES)
    with torch.no_grad():
        l32 = m32(ids, context=m32.kb_context(t32)).logits
        l16 = m16(ids, context=m16.kb_context(t16)).logits
    assert l16.dtype == torch.bfloat16
    assert torch.isfinite(l16).all()
    assert (l16.float().softmax(-1) - l32.softmax(-1)).abs().max() < 0.1


def test_hand_built_adapters_retrieve_the_right_triple():
    """Adapters constructed (not trained) so that triple i's key is the KB query of question i."""
    model = tiny_kblam("llama", kb_scale_factor=None)
    layer = model.config.kb_layers[0]
    model.config.retrieval_layers = [layer]
    n = 8
    questions = [_ids(1, 7, seed=100 + i) for i in range(n)]
    # KB query of each question's last token at the first KB layer (its input does not depend on the KB)
    attn = model.backbone.model.layers[layer]
    queries = []
    for q in questions:
        h = model.backbone.model.embed_tokens(q)
        h = attn.input_layernorm(h)
        queries.append(model.kb_queries[str(layer)](h)[0, -1])
    queries = torch.stack(queries)  # [n, kb_dim]
    triples = [Triple(f"Thing {i}", "colour", f"shade {i}") for i in range(n)]
    key_emb, _ = model.encoder.embed_triples(triples)
    # Solve W so that W e_i = centred q_i (LayerNorm keeps the direction of a centred vector).
    target = queries - queries.mean(dim=1, keepdim=True)
    full = torch.zeros(n, model.adapters.key.out_features)
    j = model.config.kb_layers.index(layer)
    d = model.config.kb_dim
    full[:, j * d:(j + 1) * d] = target
    w = torch.linalg.lstsq(key_emb, full).solution.T  # [out, in]
    with torch.no_grad():
        model.adapters.key.weight.copy_(w)
    tokens = model.encode_kb(triples)
    for i, q in enumerate(questions):
        ctx = model.kb_context(tokens, record=True)
        with torch.no_grad(), use_kb(ctx):
            model.backbone(input_ids=q)
        mass = ctx.records[layer].mean_mass()[0, :n]
        assert int(mass.argmax()) == i
