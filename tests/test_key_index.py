"""The key index (encoding/key_index.py + attention/indexed_scoring.py): the indexed retrieval
pass against the exact scan, the index following KB edits, and a tampered index refused."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from kblam_integrations.errors import CacheIntegrityError
from kblam_integrations.kb.knowledge_base import KnowledgeBase
from kblam_integrations.kb.triple import Triple
from tests.conftest import tiny_chat_kblam

QUESTIONS = [f"What is the colour of entity {i}?" for i in range(0, 60, 7)]


def _triples(n: int, start: int = 0) -> list[Triple]:
    props = ["colour", "founder", "size"]
    return [Triple(f"entity {i}", props[i % 3], f"value {i}") for i in range(start, start + n)]


def _models(**index):
    exact = tiny_chat_kblam(kb_index=None)
    indexed = tiny_chat_kblam(kb_index_min_size=1, **index)
    indexed.load_state_dict(exact.state_dict())
    return exact, indexed


def test_candidates_covering_the_kb_give_the_exact_scores_and_answers():
    exact, indexed = _models(kb_index="flat", kb_index_candidates=64)
    kb = _triples(40)
    s_exact, null_exact = exact.retrieve_batch(QUESTIONS, kb)
    tokens = indexed.encode_kb(kb)
    assert tokens.index is not None and tokens.index.ntotal == 40
    s_idx, null_idx = indexed.retrieve_batch(QUESTIONS, tokens)
    torch.testing.assert_close(s_idx, s_exact, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(null_idx, null_exact, atol=1e-5, rtol=1e-4)
    for mode in ("grounded", "kblam"):
        a = exact.generate(QUESTIONS[0], kb=kb, mode=mode, max_new_tokens=4)
        b = indexed.generate(QUESTIONS[0], kb=tokens, mode=mode, max_new_tokens=4)
        assert b.text == a.text and [t.id for t in b.triples] == [t.id for t in a.triples]


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_few_candidates_keep_the_exact_top_triples(kind):
    exact, indexed = _models(kb_index=kind, kb_index_candidates=24, kb_index_nprobe=64, kb_index_tail_sample=64)
    kb = _triples(400)
    s_exact, null_exact = exact.retrieve_batch(QUESTIONS, kb)
    s_idx, null_idx = indexed.retrieve_batch(QUESTIONS, indexed.encode_kb(kb))
    assert (s_idx > 0).sum(1).max() < 400  # only candidates were scored
    top_exact, top_idx = s_exact.topk(3).indices, s_idx.topk(3).indices
    assert torch.equal(top_idx[:, 0], top_exact[:, 0])
    assert all(set(a) == set(b) for a, b in zip(top_idx.tolist(), top_exact.tolist()))
    # the estimated normaliser keeps probabilities close to the exact ones
    torch.testing.assert_close(s_idx.gather(1, top_exact), s_exact.gather(1, top_exact), rtol=0.25, atol=1e-4)
    torch.testing.assert_close(null_idx, null_exact, rtol=0.25, atol=1e-4)


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_index_follows_additions_and_removals(kind):
    model = tiny_chat_kblam(kb_index=kind, kb_index_min_size=50)
    kb = KnowledgeBase(_triples(30))
    manager = model.kb_manager(kb)
    assert manager.snapshot().index is None  # below the size threshold: the exact scan
    kb.add_many(_triples(90, start=30))
    first = manager.snapshot()
    assert first.index is not None and first.index.ntotal == 120
    removed = [t for t in first.triples[:10]]
    for t in removed:
        kb.remove(t.id)
    kb.add_many(_triples(5, start=500))
    encoded = model.encoder.triples_encoded
    snap = manager.snapshot()
    assert model.encoder.triples_encoded == encoded + 5  # only the new triples were encoded
    assert snap.index is first.index and snap.index.ntotal == len(snap) == 115
    snap.index.verify(snap.key_embeddings, snap.ids, samples=len(snap))
    gone = {int(first.ids[first.triples.index(t)]) for t in removed}
    assert gone.isdisjoint(snap.ids.tolist())
    # a new triple is found by its own key embedding, a removed one no longer
    new_row = len(snap) - 1
    assert int(snap.index.search(snap.key_embeddings[new_row:new_row + 1].float(), 1)[0, 0]) == int(snap.ids[new_row])
    old_emb = first.key_embeddings[first.triples.index(removed[0])]
    assert int(snap.index.search(old_emb[None].float(), 1)[0, 0]) not in gone


def test_saved_index_round_trips_and_tampering_is_refused(tmp_path):
    from kblam_integrations.encoding.key_index import KeyIndex
    from kblam_integrations.encoding.manager import KBManager

    model = tiny_chat_kblam(kb_index="ivf", kb_index_min_size=1)
    manager = model.kb_manager(KnowledgeBase(_triples(200)))
    snap = manager.snapshot()
    path = manager.save(tmp_path / "kb.safetensors")
    loaded = KBManager.load(path, model.encoder).snapshot()
    assert loaded.index is not None and loaded.index.kind == "ivf" and loaded.index.ntotal == 200
    assert torch.equal(loaded.ids, snap.ids)
    q = snap.key_embeddings[:5].float()
    assert torch.equal(loaded.index.search(q, 4), snap.index.search(q, 4))

    with safe_open(str(path), framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    # 1. bytes changed after saving: the checksum catches it
    bad = tensors["key_index"].clone()
    bad[len(bad) // 2] ^= 0xFF
    save_file({**tensors, "key_index": bad}, str(tmp_path / "flipped.safetensors"), metadata=meta)
    with pytest.raises(CacheIntegrityError) as err:
        KBManager.load(tmp_path / "flipped.safetensors", model.encoder)
    assert err.value.field == "key_index"
    # 2. a well-formed index of other vectors, checksum recomputed: the content check catches it
    other = KeyIndex.build(torch.randn(200, 32), snap.ids, "ivf").to_tensor()
    from kblam_integrations.encoding.cache_file import _sha256

    meta2 = {**meta, "sha256_key_index": _sha256(other)}
    save_file({**tensors, "key_index": other}, str(tmp_path / "swapped.safetensors"), metadata=meta2)
    with pytest.raises(CacheIntegrityError, match="key embedding") as err:
        KBManager.load(tmp_path / "swapped.safetensors", model.encoder)
    assert err.value.field == "key_index"


def test_keys_only_storage_retrieves_the_same_and_round_trips(tmp_path):
    from kblam_integrations.encoding.manager import KBManager
    from kblam_integrations.encoding.tokens import has_values

    model = tiny_chat_kblam(kb_index=None)
    kb = KnowledgeBase(_triples(60))
    full = KBManager(kb, model.encoder).snapshot()
    texts = model.encoder.sentence_encoder.texts
    keys_only = KBManager(kb, model.encoder, store_values=False)
    snap = keys_only.snapshot()
    assert model.encoder.sentence_encoder.texts - texts == 60  # key texts only, no value texts
    assert not has_values(snap.values) and snap.values.shape == full.values.shape
    assert snap.values.untyped_storage().nbytes() < 1024  # one zero row, not N
    torch.testing.assert_close(snap.keys, full.keys)
    s_full, _ = model.retrieve_batch(QUESTIONS, full)
    s_keys, _ = model.retrieve_batch(QUESTIONS, snap)
    torch.testing.assert_close(s_keys, s_full)
    kb.add_many(_triples(5, start=100))
    kb.remove(snap.triples[0].id)
    edited = keys_only.snapshot()
    assert len(edited) == 64 and not has_values(edited.values)
    kb.add_many(_triples(1, start=200))  # a one-triple edit stays keys-only too
    kb.remove(edited.triples[0].id)
    edited = keys_only.snapshot()
    assert len(edited) == 64 and not has_values(edited.values)
    path = keys_only.save(tmp_path / "keys_only.safetensors")
    full_path = KBManager(kb, model.encoder).save(tmp_path / "full.safetensors")
    value_bytes = edited.keys.numel() * edited.keys.element_size()  # values have the keys' shape
    assert full_path.stat().st_size - path.stat().st_size >= 0.99 * value_bytes
    loaded = KBManager.load(path, model.encoder)
    assert not loaded.store_values and not has_values(loaded.snapshot().values)
    torch.testing.assert_close(loaded.snapshot().keys, edited.keys)


def test_one_layer_index_search_is_the_exact_layernormed_key_score():
    """With one KB layer, dividing each embedding by its key norm makes the index's inner
    product the attention logit itself (LayerNorm included), so a flat search is exact MIPS
    over the keys; raw embeddings would only approximate it."""
    from kblam_integrations.encoding.key_index import KeyIndex, KeySearch, key_norm_metric, key_projections

    g = torch.Generator().manual_seed(0)
    emb_dim, kb_dim, n = 32, 16, 500
    weight = torch.randn(kb_dim, emb_dim, generator=g)
    emb = torch.randn(n, emb_dim, generator=g) * torch.rand(n, 1, generator=g).add(0.2)  # varied norms
    keys = torch.nn.functional.layer_norm(emb @ weight.T, (kb_dim,))  # what the key adapter stores
    proj = key_projections(weight, 1, kb_dim)
    index = KeyIndex.build(emb, torch.arange(n) + 1000, "flat", metric=key_norm_metric(proj))
    search = KeySearch(index, torch.arange(n) + 1000, emb, proj, candidates=5, tail_sample=n)
    queries = torch.randn(1, 8, kb_dim, generator=g)
    exact = (queries[0] @ keys.T).topk(5).indices
    found = search.index.search(torch.einsum("bd,de->be", queries[0], proj[0]), 5) - 1000
    assert torch.equal(found, exact)
    rows = search.candidates(queries, scaling=1.0)
    assert all(set(exact[i].tolist()) <= set(rows[i].tolist()) for i in range(8))


def test_format_3_index_of_raw_embeddings_is_rebuilt_on_load(tmp_path):
    """A format-3 file indexed the raw embeddings: its index is rebuilt from the verified
    key embeddings instead of being refused or used as it is."""
    from kblam_integrations.encoding.cache_file import _sha256
    from kblam_integrations.encoding.key_index import KeyIndex
    from kblam_integrations.encoding.manager import KBManager

    model = tiny_chat_kblam(kb_index="flat", kb_index_min_size=1)
    manager = model.kb_manager(KnowledgeBase(_triples(60)))
    snap = manager.snapshot()
    path = manager.save(tmp_path / "kb.safetensors")
    with safe_open(str(path), framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    raw = KeyIndex.build(snap.key_embeddings, snap.ids, "flat").to_tensor()
    save_file({**tensors, "key_index": raw}, str(tmp_path / "v3.safetensors"),
              metadata={**meta, "format": "kblam-encoded-kb/3", "sha256_key_index": _sha256(raw)})
    loaded = KBManager.load(tmp_path / "v3.safetensors", model.encoder).snapshot()
    assert loaded.index is not None and loaded.index.kind == "flat" and loaded.index.metric is not None
    loaded.index.verify(loaded.key_embeddings, loaded.ids, samples=60)
    # the same raw index under the current format is refused: its vectors are not the stored ones
    save_file({**tensors, "key_index": raw}, str(tmp_path / "v4.safetensors"),
              metadata={**meta, "sha256_key_index": _sha256(raw)})
    with pytest.raises(CacheIntegrityError, match="key embedding"):
        KBManager.load(tmp_path / "v4.safetensors", model.encoder)
