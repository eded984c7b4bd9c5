"""KBEncoder and KBManager: incremental re-encoding, snapshots, persistence, fingerprints."""

from __future__ import annotations

import pytest
import torch

from kblam_integrations.encoding.manager import KBManager
from kblam_integrations.errors import CacheMismatchError, KBFormatError
from kblam_integrations.kb import KnowledgeBase, Triple

from .conftest import tiny_kblam


def _kb(n: int) -> KnowledgeBase:
    return KnowledgeBase([Triple(f"Entity {i}", "founder", f"Person {i}") for i in range(n)])


def test_adding_one_triple_to_10k_kb_encodes_one_triple():
    model = tiny_kblam()
    kb = _kb(10_000)
    manager = model.kb_manager(kb)
    first = manager.snapshot()
    assert len(first) == 10_000
    st = model.encoder.sentence_encoder
    texts_before, encoded_before = st.texts, model.encoder.triples_encoded
    kb.add("Entity new", "founder", "Person new")
    snap = manager.snapshot()
    assert len(snap) == 10_001
    assert model.encoder.triples_encoded - encoded_before == 1
    assert st.texts - texts_before == 2  # its key text and its value text
    # Untouched triples keep their tokens bit for bit
    i_old = first.triples.index(Triple("Entity 5", "founder", "Person 5"))
    i_new = snap.triples.index(Triple("Entity 5", "founder", "Person 5"))
    assert torch.equal(first.keys[i_old], snap.keys[i_new])


def test_update_and_remove_are_tracked_and_snapshots_stay_immutable():
    model = tiny_kblam()
    kb = _kb(5)
    manager = model.kb_manager(kb)
    old = manager.snapshot()
    old_keys = old.keys.clone()
    updated = kb.update(("Entity 1", "founder", "Person 1"), "Somebody Else")
    kb.remove(("Entity 2", "founder", "Person 2"))
    snap = manager.snapshot()
    assert set(snap.triples) == set(kb)
    assert updated in snap.triples and Triple("Entity 2", "founder", "Person 2") not in snap.triples
    assert torch.equal(old.keys, old_keys) and len(old) == 5  # in-flight calls keep their version
    # tokens of the updated triple equal a fresh encoding of it
    fresh_k, _ = model.encoder.encode([updated])
    assert torch.allclose(snap.keys[snap.triples.index(updated)].float(), fresh_k[0].float(), atol=2e-3)


def test_no_change_means_no_encoding():
    model = tiny_kblam()
    manager = model.kb_manager(_kb(20))
    manager.snapshot()
    before = model.encoder.triples_encoded
    manager.snapshot()
    assert model.encoder.triples_encoded == before


def test_encoded_kb_round_trip_without_reencoding(tmp_path):
    model = tiny_kblam()
    kb = _kb(12)
    manager = model.kb_manager(kb)
    path = manager.save(tmp_path / "kb.safetensors")
    before = model.encoder.triples_encoded
    loaded = KBManager.load(path, model.encoder)
    snap = loaded.snapshot()
    assert model.encoder.triples_encoded == before
    assert set(snap.triples) == set(kb)
    orig = manager.snapshot()
    for t in kb:
        assert torch.equal(orig.keys[orig.triples.index(t)], snap.keys[snap.triples.index(t)])


def test_cache_from_other_adapters_is_refused(tmp_path):
    model = tiny_kblam()
    path = model.kb_manager(_kb(3)).save(tmp_path / "kb.safetensors")
    other = tiny_kblam()
    with torch.no_grad():
        other.adapters.key.weight.add_(0.01)
    with pytest.raises(CacheMismatchError):
        KBManager.load(path, other.encoder)


def test_corrupt_or_missing_cache_is_a_typed_error(tmp_path):
    model = tiny_kblam()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(KBFormatError):
        KBManager.load(bad, model.encoder)
    with pytest.raises(KBFormatError):
        KBManager.load(tmp_path / "missing.safetensors", model.encoder)


def test_fp16_and_bf16_storage():
    model = tiny_kblam()
    t = [Triple("A", "b", "c")]
    k16, _ = model.encoder.encode(t, dtype=torch.float16)
    kbf, _ = model.encoder.encode(t, dtype=torch.bfloat16)
    assert k16.dtype == torch.float16 and kbf.dtype == torch.bfloat16
    assert torch.allclose(k16.float(), kbf.float(), atol=5e-2)


def test_encoding_fills_a_preallocated_fp16_buffer_block_by_block():
    """No fp32 adapter output (or embedding matrix) for the whole KB: the adapters see one block at a time."""
    model = tiny_kblam()
    triples = [Triple(f"Entity {i}", "founder", f"Person {i}") for i in range(50)]
    seen = []
    forward = model.adapters.forward

    def spy(k, v):
        seen.append(k.shape[0])
        return forward(k, v)

    model.adapters.forward = spy
    keys, values = model.encoder.encode(triples, block_size=16)
    assert max(seen) == 16 and sum(seen) == 50
    assert keys.dtype == values.dtype == torch.float16
    for j in range(model.adapters.num_kb_layers):  # layer-major storage: each layer one contiguous block
        assert keys[:, j].is_contiguous() and values[:, j].is_contiguous()
    model.adapters.forward = forward
    ref_k, ref_v = model.encoder.encode(triples, block_size=1000)
    assert torch.equal(keys, ref_k) and torch.equal(values, ref_v)
    with torch.no_grad():
        fp32_k, _ = model.adapters(*model.encoder.embed_triples(triples))
    assert torch.allclose(keys.float(), fp32_k, atol=2e-3)


def test_incremental_updates_and_reloads_stay_layer_major(tmp_path):
    model = tiny_kblam()
    kb = _kb(8)
    manager = model.kb_manager(kb)
    first = manager.snapshot()
    kb.add("Entity new", "founder", "Person new")
    kb.remove(("Entity 3", "founder", "Person 3"))
    snap = manager.snapshot()
    loaded = KBManager.load(manager.save(tmp_path / "kb.safetensors"), model.encoder).snapshot()
    for tokens in (first, snap, loaded):
        for j in range(model.adapters.num_kb_layers):
            assert tokens.keys[:, j].is_contiguous() and tokens.values[:, j].is_contiguous()
    for t in snap.triples:
        if t in first.triples:
            assert torch.equal(first.keys[first.triples.index(t)], snap.keys[snap.triples.index(t)])
            assert torch.equal(first.values[first.triples.index(t)], snap.values[snap.triples.index(t)])
        assert torch.equal(snap.keys[snap.triples.index(t)], loaded.keys[loaded.triples.index(t)])
