"""A KB sharded across processes gives the same model as the whole KB in one process.

The combine is checked in one process first (shard states stacked along a "rank" axis,
ranks simulated by threads), then for real: two gloo processes on the CPU, each holding
part of a 37-triple KB, against one process holding all of it.
"""

from __future__ import annotations

import dataclasses
import socket
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch

from kblam_integrations.attention import KBAttentionRecord, rectangular_attention, use_kb
from kblam_integrations.attention.rectangular import _repeat_kv, text_scores
from kblam_integrations.attention.sharded import (
    KBShard, combine_kb_states, kb_shard_state, local_state, merge_states, shard_bounds, sharded_retrieval_probs,
)
from kblam_integrations.attention.scoring import kb_retrieval_probs
from kblam_integrations.kb import Triple

from .conftest import tiny_kblam
from .test_attention import _random_layer, _reference_attention

KB = [Triple(f"Entity {i}", p, f"value {i} {p}") for i in range(19) for p in ("founder", "location")][:37]
WORLD = 2
TIMEOUT_S = 120  # a hang (a rank stuck in a collective) fails the test instead of blocking CI


def _stacked_reduce(t: torch.Tensor, op: str) -> torch.Tensor:
    """all_reduce over a leading rank axis: every rank gets the reduction."""
    r = t.amax(dim=0, keepdim=True) if op == "max" else t.sum(dim=0, keepdim=True)
    return r.expand_as(t).clone()


@pytest.mark.parametrize("cuts", [(0, 10, 23), (0, 0, 23), (0, 1, 2, 23), (0, 23)])
def test_combined_shard_states_equal_the_whole_kb(cuts):
    """Per-shard (max, sum, values), combined by MAX / SUM reductions + text and null once == one softmax."""
    x = _random_layer()
    shift, scaling, b, q = -1.3, 0.35, x["query"].shape[0], x["query"].shape[2]
    mask = torch.ones(q, q).tril().bool()[None, None].expand(b, 1, q, q).clone()
    mask[1, :, :, :3] = False  # left padding, fully masked rows included
    states = [kb_shard_state(x["kb_query"], x["kb_keys"][lo:hi], x["kb_values"][lo:hi], scaling, chunk_size=4)
              for lo, hi in zip(cuts, cuts[1:])]
    m, l, acc = (torch.stack(s) for s in zip(*states))
    kb = combine_kb_states(m, l, acc, _stacked_reduce)
    assert all(torch.equal(t[0], t[-1]) for t in kb)  # every rank ends with the same state
    t = text_scores(x["query"], x["key"], mask, scaling)
    null = torch.matmul(x["kb_query"].float() * scaling, x["null_key"].unsqueeze(-1))
    local = local_state(t, _repeat_kv(x["value"], 2), shift, null, x["null_value"])  # text + null, once
    m, l, acc = merge_states([s[0] for s in kb], local)
    out = (acc / l).transpose(1, 2)
    whole = rectangular_attention(x["query"], x["key"], x["value"], mask, scaling, x["kb_query"], x["kb_keys"],
                                  x["kb_values"], null_key=x["null_key"], null_value=x["null_value"], score_shift=shift)
    ref, _ = _reference_attention(x["query"], x["key"], x["value"], mask, scaling, x["kb_query"], x["kb_keys"],
                                  x["kb_values"], x["null_key"], x["null_value"], shift)
    assert (out - whole).abs().max() <= 1e-5
    assert (out - ref).abs().max() <= 1e-5


@dataclasses.dataclass(frozen=True)
class _ThreadShard(KBShard):
    """A shard whose all-reduce meets the other simulated ranks (threads) at a barrier."""

    slots: list | None = None
    barrier: threading.Barrier | None = None
    rank: int = 0

    def all_reduce(self, tensor, op):
        self.slots[self.rank] = tensor.clone()
        self.barrier.wait()
        stacked = torch.stack(self.slots)
        result = stacked.amax(dim=0) if op == "max" else stacked.sum(dim=0)
        self.barrier.wait()  # every rank has read the slots before the next call overwrites them
        return tensor.copy_(result)


def _run_ranks(n: int, world: int, fn):
    """``fn(shard)`` on ``world`` threads, one per simulated rank; their results in rank order."""
    slots, barrier, results = [None] * world, threading.Barrier(world, timeout=30), [None] * world

    def run(rank):
        lo, hi = shard_bounds(n, rank, world)
        results[rank] = fn(_ThreadShard(lo, hi - lo, n, slots=slots, barrier=barrier, rank=rank))

    threads = [threading.Thread(target=run, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(r is not None for r in results), "a simulated rank failed"
    return results


@pytest.mark.parametrize("world", [2, 3])
def test_sharded_rectangular_attention_and_records_equal_the_whole_kb(world):
    x = _random_layer(n=23)
    n, shift = x["kb_keys"].shape[0], -0.7

    def call(shard, record):
        s = slice(0, n) if shard is None else shard.slice
        return rectangular_attention(x["query"], x["key"], x["value"], None, 0.35, x["kb_query"], x["kb_keys"][s],
                                     x["kb_values"][s], null_key=x["null_key"], null_value=x["null_value"],
                                     score_shift=shift, chunk_size=5, record=record, shard=shard)

    whole_rec = KBAttentionRecord()
    whole = call(None, whole_rec)

    def rank_call(shard):
        rec = KBAttentionRecord()
        return call(shard, rec), rec

    results = _run_ranks(n, world, rank_call)
    for out, _ in results:
        assert (out - whole).abs().max() <= 1e-5
    # each rank's record: its own columns (globally normalised) then the null token
    mass = torch.cat([rec.mass_sum[:, :-1] for _, rec in results] + [results[0][1].mass_sum[:, -1:]], dim=-1)
    assert torch.allclose(mass, whole_rec.mass_sum, atol=1e-6)


def test_sharded_retrieval_probs_equal_the_whole_kb():
    x = _random_layer(n=23)
    rows = torch.tensor([[1.0] * 7, [0, 0, 0, 1, 1, 1, 0.5]])
    whole = kb_retrieval_probs(x["kb_query"], x["kb_keys"], 0.35, null_key=x["null_key"], row_mask=rows)
    parts = _run_ranks(23, 2, lambda shard: sharded_retrieval_probs(
        x["kb_query"], x["kb_keys"][shard.slice], 0.35, shard, null_key=x["null_key"], row_mask=rows, chunk_size=4))
    got = torch.cat([parts[0][:, :-1], parts[1]], dim=-1)
    assert torch.allclose(got, whole, atol=1e-6)
    assert torch.equal(parts[0][:, -1], parts[1][:, -1])


def test_sharded_path_refuses_what_it_cannot_do_exactly():
    x = _random_layer(n=4)
    shard = KBShard(0, 4, 4)
    args = (x["query"], x["key"], x["value"], None, 0.35, x["kb_query"], x["kb_keys"], x["kb_values"])
    with pytest.raises(ValueError, match="top_k"):
        rectangular_attention(*args, top_k=2, shard=shard)
    with pytest.raises(ValueError, match="inference-only"):
        rectangular_attention(*args, keep_logits=True, shard=shard)
    with pytest.raises(ValueError, match="KBShard says"):
        rectangular_attention(*args, shard=KBShard(0, 3, 4))


def test_shard_bounds_cover_the_kb_once():
    for n in (0, 1, 5, 37):
        for world in (1, 2, 3, 8):
            spans = [shard_bounds(n, r, world) for r in range(world)]
            assert spans[0][0] == 0 and spans[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
            assert max(hi - lo for lo, hi in spans) - min(hi - lo for lo, hi in spans) <= 1


# ------------------------------------------------------------------ two real gloo processes
def _ids():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 128, (2, 12), generator=g)
    mask = torch.ones_like(ids)
    mask[1, :3] = 0  # left padding
    return ids, mask


@dataclasses.dataclass(frozen=True)
class _NoReduceShard(KBShard):
    """The sharded path with its all-reduce disabled: each rank sees only its own shard."""

    def all_reduce(self, tensor, op):
        return tensor


def _forwards(model, tokens, shard=None):
    """Last-position logits, per-layer KB attention records and retrieval probabilities."""
    from kblam_integrations.attention.sharded import gather_kb_columns

    ids, mask = _ids()
    gather = (lambda t: t) if shard is None else (lambda t: gather_kb_columns(t, shard))
    out = {}
    with torch.no_grad():
        ctx = model.kb_context(tokens, record=True)
        ctx.shard = shard
        out["logits"] = model(ids, attention_mask=mask, context=ctx).logits[:, -1]
        out["mass"] = {layer: gather(rec.mass_sum) for layer, rec in ctx.records.items()}
        ctx = model.kb_context(tokens, record=True, scores_only=True)
        ctx.shard = shard
        model(ids, attention_mask=mask, context=ctx)
        out["retrieval"] = {layer: gather(rec.mass_sum) for layer, rec in ctx.records.items()}
        ctx = model.kb_context(tokens)
        ctx.shard = shard
        with use_kb(ctx):  # greedy decoding with the KV cache: ranks step in lockstep
            out["generated"] = model.backbone.generate(input_ids=ids, attention_mask=mask, max_new_tokens=4,
                                                       do_sample=False, pad_token_id=0)
        if shard is not None:
            ctx = model.kb_context(tokens)
            ctx.shard = _NoReduceShard(shard.offset, shard.size, shard.kb_len, shard.group)
            out["unreduced"] = model(ids, attention_mask=mask, context=ctx).logits[:, -1]
    return out


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                            timeout=timedelta(seconds=TIMEOUT_S))
    try:
        model = tiny_kblam("llama")  # same seed in every process: the same backbone and adapters
        tokens = model.encode_kb(KB)
        shard = KBShard.even(len(tokens))
        # every rank keeps only its slice of the knowledge tokens
        local = dataclasses.replace(tokens, triples=tokens.triples[shard.slice], keys=tokens.keys[shard.slice],
                                    values=tokens.values[shard.slice])
        torch.save({"shard": (shard.offset, shard.size), **_forwards(model, local, shard)},
                   Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """Both ranks' results, from one launch of two gloo processes."""
    import torch.multiprocessing as mp

    out_dir = tmp_path_factory.mktemp("sharded")
    # fork: the children start with torch and transformers already imported (spawn re-imports
    # them, 15-60 s on a loaded CI machine); each child sets one thread before any torch op.
    method = "fork" if sys.platform == "linux" else "spawn"
    procs = mp.start_processes(_worker, args=(WORLD, _free_port(), str(out_dir)), nprocs=WORLD, join=False,
                               start_method=method)
    deadline = time.monotonic() + TIMEOUT_S + 60
    try:
        while not procs.join(timeout=5):
            if time.monotonic() > deadline:
                pytest.fail(f"the {WORLD} gloo processes did not finish in time")
    finally:
        for p in procs.processes:
            if p.is_alive():
                p.kill()
    return [torch.load(out_dir / f"rank{r}.pt") for r in range(WORLD)]


@pytest.fixture(scope="module")
def one_process():
    model = tiny_kblam("llama")
    return _forwards(model, model.encode_kb(KB))


def test_two_gloo_processes_give_the_logits_of_one(two_ranks, one_process):
    assert [r["shard"] for r in two_ranks] == [(0, 19), (19, 18)]  # uneven split of 37 triples
    for r in two_ranks:
        diff = (r["logits"] - one_process["logits"]).abs().max().item()
        print(f"max |logit difference| two processes vs one: {diff:.2e}")
        assert diff <= 1e-5
        assert torch.equal(r["generated"], one_process["generated"])
        for key in ("mass", "retrieval"):
            assert r[key].keys() == one_process[key].keys()
            for layer, want in one_process[key].items():
                assert r[key][layer].shape == (2, len(KB) + 1)
                assert torch.allclose(r[key][layer], want, atol=1e-6), (key, layer)


def test_without_the_all_reduce_the_logits_differ(two_ranks, one_process):
    """The check above can fail: each rank alone over its half of the KB is a different model."""
    for r in two_ranks:
        diff = (r["unreduced"] - one_process["logits"]).abs().max().item()
        print(f"max |logit difference| without the all-reduce: {diff:.2e}")
        assert diff > 1e-3
