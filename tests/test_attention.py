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


# ------------------------------------------------------------ no copies of the KB, null token apart
def _reference_attention(query, key, value, mask, scaling, kb_query, kb_keys, kb_values, null_key, null_value,
                         shift):
    """The old formulation: null token concatenated onto the KB, one dense fp32 softmax."""
    from kblam_integrations.attention.rectangular import _repeat_kv, text_scores

    keys = torch.cat([kb_keys, null_key[None]]) if null_key is not None else kb_keys
    values = torch.cat([kb_values, null_value[None]]) if null_value is not None else kb_values
    kb = torch.einsum("bhqd,nhd->bhqn", kb_query.float(), keys.float()) * scaling + shift
    t = text_scores(query, key, mask, scaling)
    p = torch.softmax(torch.cat([kb, t], dim=-1), dim=-1)
    n = keys.shape[0]
    v_text = _repeat_kv(value, query.shape[1] // key.shape[1]).float()
    out = torch.einsum("bhqn,nhd->bhqd", p[..., :n], values.float()) + torch.matmul(p[..., n:], v_text)
    return out.transpose(1, 2), p[:, :, -1, :n].mean(dim=1)


def _random_layer(b=2, h=4, kvh=2, q=7, kv=7, d=8, n=23, seed=0, dtype=torch.float16, layer_major=True):
    g = torch.Generator().manual_seed(seed)
    query, kb_query = torch.randn(b, h, q, d, generator=g), torch.randn(b, h, q, d, generator=g)
    key, value = torch.randn(b, kvh, kv, d, generator=g), torch.randn(b, kvh, kv, d, generator=g)
    layers = 3
    if layer_major:
        kb_k = torch.randn(layers, n, h * d, generator=g).to(dtype).transpose(0, 1)
        kb_v = torch.randn(layers, n, h * d, generator=g).to(dtype).transpose(0, 1)
    else:
        kb_k = torch.randn(n, layers, h * d, generator=g).to(dtype)
        kb_v = torch.randn(n, layers, h * d, generator=g).to(dtype)
    null_k, null_v = torch.randn(h, d, generator=g), torch.randn(h, d, generator=g)
    j = 1
    return dict(query=query, key=key, value=value, kb_query=kb_query, kb_keys=kb_k[:, j].view(n, h, d),
                kb_values=kb_v[:, j].view(n, h, d), null_key=null_k, null_value=null_v)


@pytest.mark.parametrize("chunk", [1, 5, 4096])
@pytest.mark.parametrize("mask_kind", ["causal", "bool", "additive"])
@pytest.mark.parametrize("layer_major", [True, False])
def test_streamed_attention_with_separate_null_token_equals_the_concatenated_softmax(chunk, mask_kind, layer_major):
    from kblam_integrations.attention import KBAttentionRecord, rectangular_attention

    x = _random_layer(layer_major=layer_major)
    b, q = x["query"].shape[0], x["query"].shape[2]
    causal = torch.ones(q, q).tril().bool()
    if mask_kind == "causal":
        mask = None
    else:
        allowed = causal[None, None].expand(b, 1, q, q).clone()
        allowed[1, :, :, :3] = False  # left padding of the second row (fully masked rows included)
        mask = allowed if mask_kind == "bool" else torch.zeros(b, 1, q, q).masked_fill(~allowed, float("-inf"))
    shift = -1.3
    record = KBAttentionRecord()
    out = rectangular_attention(x["query"], x["key"], x["value"], mask, 0.35, x["kb_query"], x["kb_keys"],
                                x["kb_values"], null_key=x["null_key"], null_value=x["null_value"],
                                score_shift=shift, chunk_size=chunk, record=record)
    ref, ref_mass = _reference_attention(x["query"], x["key"], x["value"], mask, 0.35, x["kb_query"], x["kb_keys"],
                                         x["kb_values"], x["null_key"], x["null_value"], shift)
    assert torch.isfinite(out).all()
    assert torch.allclose(out, ref, atol=1e-5)
    n = x["kb_keys"].shape[0]
    assert record.mass_sum.shape == (b, n + 1)  # null token = last column
    assert torch.allclose(record.mass_sum, ref_mass, atol=1e-6)


def test_overflowing_scores_fall_back_to_per_chunk_max():
    """KB scores far above the text's (exp would overflow fp32 against it) are still exact."""
    from kblam_integrations.attention import KBAttentionRecord, rectangular_attention

    x = _random_layer(layer_major=True)
    big_k = (x["kb_keys"].float() * 60).half()  # scores of several hundred
    record = KBAttentionRecord()
    out = rectangular_attention(x["query"], x["key"], x["value"], None, 1.0, x["kb_query"], big_k, x["kb_values"],
                                null_key=x["null_key"], null_value=x["null_value"], chunk_size=4, record=record)
    ref, ref_mass = _reference_attention(x["query"], x["key"], x["value"], None, 1.0, x["kb_query"], big_k,
                                         x["kb_values"], x["null_key"], x["null_value"], 0.0)
    assert torch.isfinite(out).all()
    assert torch.allclose(out, ref, atol=1e-4)
    assert torch.allclose(record.mass_sum, ref_mass, atol=1e-5)


def test_kb_context_holds_the_kb_tensors_not_copies(family):
    model = tiny_kblam(family)
    tokens = model.encode_kb(TRIPLES)
    ctx = model.kb_context(tokens, record=True)
    # the very same tensors (same storage, same data pointer): no concatenation, no .to() copy
    assert ctx.keys.data_ptr() == tokens.keys.data_ptr() and ctx.values.data_ptr() == tokens.values.data_ptr()
    assert ctx.keys.untyped_storage().data_ptr() == tokens.keys.untyped_storage().data_ptr()
    assert ctx.keys.shape[0] == len(tokens)
    null = model.adapters.null_token()
    assert torch.equal(ctx.null_keys, null[0][0].to(tokens.keys.dtype))
    assert ctx.num_tokens == len(tokens) + 1


def test_knowledge_tokens_are_stored_layer_major(family):
    model = tiny_kblam(family)
    tokens = model.encode_kb(TRIPLES)
    for j in range(model.adapters.num_kb_layers):
        assert tokens.keys[:, j].is_contiguous() and tokens.values[:, j].is_contiguous()
    assert tokens.keys.shape == (len(TRIPLES), model.adapters.num_kb_layers, model.adapters.kb_dim)


def test_null_token_output_and_records_equal_the_concatenated_kb(family):
    """End to end: the model with the separate null token == the old concatenated-KB computation."""
    from kblam_integrations.attention.context import KBContext

    model = tiny_kblam(family)
    ids = _ids()
    tokens = model.encode_kb(TRIPLES)
    new = model.kb_context(tokens, record=True)
    null = model.adapters.null_token()
    old = KBContext(keys=torch.cat([tokens.keys, null[0].to(tokens.keys.dtype)]),
                    values=torch.cat([tokens.values, null[1].to(tokens.values.dtype)]),
                    layer_map=new.layer_map, query_projections=new.query_projections, kb_len=new.kb_len,
                    kb_scale_factor=new.kb_scale_factor, chunk_size=new.chunk_size, record=True)
    with torch.no_grad():
        got = model(ids, context=new).logits
        want = model(ids, context=old).logits
    assert torch.allclose(got, want, atol=1e-5)
    for layer in model.config.kb_layers:
        assert new.records[layer].mass_sum.shape[-1] == len(tokens) + 1
        assert torch.allclose(new.records[layer].mass_sum, old.records[layer].mass_sum, atol=1e-6)


def test_training_logits_keep_the_null_column_and_its_gradient(family):
    model = tiny_kblam(family)
    ids = _ids()
    emb_k, emb_v = model.encoder.embed_triples(TRIPLES)
    keys, values = model.adapters(emb_k, emb_v)
    from kblam_integrations.encoding.manager import KBTokens

    tokens = KBTokens(-1, tuple(TRIPLES), keys, values)
    for detach in (False, True):
        model.zero_grad()
        ctx = model.kb_context(tokens, keep_logits=True)
        ctx.detach_query_input = detach
        with use_kb(ctx), torch.set_grad_enabled(not detach):
            model.backbone.get_decoder()(input_ids=ids)
        layer = model.config.kb_layers[-1]
        logits = ctx.records[layer].logits
        assert logits.shape[-1] == len(TRIPLES) + 1
        logits[..., -1].sum().backward(retain_graph=True)
        assert model.adapters.null_key.grad is not None and model.adapters.null_key.grad.abs().sum() > 0


def test_scores_only_pass_includes_the_null_column(family):
    model = tiny_kblam(family)
    ids = _ids(batch=1)
    tokens = model.encode_kb(TRIPLES)
    ctx = model.kb_context(tokens, record=True, scores_only=True)
    with torch.no_grad(), use_kb(ctx):
        model.backbone(input_ids=ids)
    layer = model.config.kb_layers[0]
    probs = ctx.records[layer].mean_mass()
    assert probs.shape == (1, len(tokens) + 1)
    assert torch.allclose(probs.sum(-1), torch.ones(1), atol=1e-5)


def test_forward_with_autograd_still_differentiates_through_the_kb(family):
    model = tiny_kblam(family)
    ids = _ids()
    tokens = model.encode_kb(TRIPLES)
    with torch.no_grad():
        want = model(ids, context=model.kb_context(tokens)).logits
    got = model(ids, context=model.kb_context(tokens)).logits  # grad mode on: KB query heads are trainable
    assert torch.allclose(got, want, atol=1e-5)
    got.sum().backward()
    head = model.kb_queries[str(model.config.kb_layers[0])]
    assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0


def test_kb_scores_far_below_the_text_scores_stay_exact():
    """KB scores 60-120 below the text's (exp underflows to subnormals) leave the output exact."""
    from kblam_integrations.attention import KBAttentionRecord, rectangular_attention

    x = _random_layer(layer_major=True)
    for shift in (-70.0, -95.0, -120.0):
        record = KBAttentionRecord()
        out = rectangular_attention(x["query"], x["key"], x["value"], None, 0.35, x["kb_query"], x["kb_keys"],
                                    x["kb_values"], null_key=x["null_key"], null_value=x["null_value"],
                                    score_shift=shift, chunk_size=5, record=record)
        ref, ref_mass = _reference_attention(x["query"], x["key"], x["value"], None, 0.35, x["kb_query"],
                                             x["kb_keys"], x["kb_values"], x["null_key"], x["null_value"], shift)
        assert torch.allclose(out, ref, atol=1e-6, rtol=1e-5)
        assert torch.allclose(record.mass_sum, ref_mass, atol=1e-12)
        # With the text this far ahead, the KB's part of the output is nil: the text's alone.
        text_only, _ = _reference_attention(x["query"], x["key"], x["value"], None, 0.35, x["kb_query"],
                                            x["kb_keys"][:0], x["kb_values"][:0], None, None, 0.0)
        assert torch.allclose(out, text_only, atol=1e-6, rtol=1e-5)
