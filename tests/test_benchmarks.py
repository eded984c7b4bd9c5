"""Smoke tests of benchmarks/kb_scaling.py and the kernel benchmark at tiny sizes (compare.py: test_compare.py).

The fast ones use the tiny in-code chat model (random Llama, character tokenizer with a
256-token context, hash sentence encoder).
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

from tests.conftest import tiny_chat_kblam

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def _load(name: str):
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    return importlib.import_module(name)


@pytest.fixture(scope="module")
def tiny():
    return tiny_chat_kblam()


def test_common_memory_and_tables(tmp_path):
    C = _load("_common")
    C.reset_peak()
    assert C.peak_rss_mb() >= C.rss_mb() * 0.5 > 0
    rows = [{"method": "kblam", "kb_size": 10, "ttft_s": 0.01234, "x": None}]
    md = C.markdown_table(rows, [("method", "m"), ("kb_size", "n"), ("ttft_s", "t"), ("x", "x")])
    assert "| kblam | 10 | 0.012 | – |" in md
    C.write_json(tmp_path / "a.json", rows)
    assert json.loads((tmp_path / "a.json").read_text()) == rows
    assert C.median_time(lambda: None, repeats=3) >= 0


def test_kb_scaling_one_size(tiny):
    S = _load("kb_scaling")
    row = S.measure_one(10, "kblam", model=tiny, trained=False, repeats=1, encode_sample=4)
    layers, dim = tiny.adapters.num_kb_layers, tiny.adapters.kb_dim
    assert row["kb_token_mb"] == pytest.approx(2 * 10 * layers * dim * 2 / 2**20)
    assert row["ttft_s"] > 0 and row["peak_rss_mb"] >= row["model_rss_mb"] * 0.9
    assert row["encode_s"] > 0 and row["encode_s_estimated"]
    empty = S.measure_one(0, "kblam", model=tiny, trained=False, repeats=1)
    assert empty["kb_token_mb"] == 0 and empty["ttft_s"] > 0
    icl0 = S.measure_one(0, "icl", model=tiny, trained=False, repeats=1)
    assert icl0["fits"] and icl0["ttft_s"] > 0
    icl = S.measure_one(50, "icl", model=tiny, trained=False, repeats=1)  # 256-token context: cannot fit
    assert not icl["fits"] and icl["ttft_s"] is None
    tokens = S.random_kb_tokens(tiny, 5)
    assert len(tokens) == 5 and tokens.keys.dtype.itemsize == 2
    assert S.check_targets([empty, row])[0].startswith("kblam: TTFT at 10 triples")
    scores = S.measure_one(10, "kblam-scores", model=tiny, trained=False, repeats=1, encode_sample=0)
    assert scores["ttft_s"] > 0 and scores["kb_shares_storage"]
    assert any(c.startswith("kblam-scores: TTFT at 10 triples") for c in S.check_targets([empty, row, scores]))


def test_kb_scaling_run_in_process(tiny, monkeypatch, tmp_path):
    S = _load("kb_scaling")
    monkeypatch.setattr(S.C, "load_model", lambda weights=None: (tiny, False))
    rows = S.run([0, 5, 50, 500], isolate=False, repeats=1, encode_sample=2, progress=False)
    icl = [r for r in rows if r["method"] == "icl"]
    assert icl[0]["fits"] is True and icl[0]["ttft_s"] > 0
    assert icl[-1]["fits"] is False and icl[-1]["ttft_s"] is None and "does not fit" in icl[-1]["note"]
    S.write_markdown(tmp_path / "k.md", rows, S.check_targets(rows), "cmd")
    md = (tmp_path / "k.md").read_text()
    assert "| kblam | 5 |" in md and "| kblam-scores | 5 |" in md


def test_common_reset_peak_really_resets():
    """compare.py's peak RSS per job relies on /proc/self/clear_refs resetting VmHWM."""
    C = _load("_common")
    block = bytearray(200 * 2**20)
    block[:: 4096] = b"x" * len(block[:: 4096])  # touch every page
    high = C.peak_rss_mb()
    del block
    assert C.reset_peak()
    assert C.peak_rss_mb() < high - 150


def test_fused_kernel_of_the_kernel_benchmark_matches_the_library_attention():
    import torch

    from kblam_integrations.attention.context import KBAttentionRecord
    from kblam_integrations.attention.rectangular import rectangular_attention, text_scores

    K = _load("kb_attention_kernels")
    g = torch.Generator().manual_seed(0)
    b, h, kvh, q, d, n = 1, 4, 2, 6, 16, 300
    query, kb_query = torch.randn(b, h, q, d, generator=g), torch.randn(b, h, q, d, generator=g)
    key, value = torch.randn(b, kvh, q, d, generator=g), torch.randn(b, kvh, q, d, generator=g)
    keys, values = torch.randn(n, h, d, generator=g).half(), torch.randn(n, h, d, generator=g).half()
    null_k, null_v = torch.randn(h, d, generator=g), torch.randn(h, d, generator=g)
    rec_lib, rec_fused = KBAttentionRecord(), KBAttentionRecord()
    expected = rectangular_attention(query, key, value, None, d ** -0.5, kb_query, keys, values, null_key=null_k,
                                     null_value=null_v, score_shift=-1.5, record=rec_lib)
    v_text = value.repeat_interleave(h // kvh, dim=1)
    got = K.fused_kb_attention(text_scores(query, key, None, d ** -0.5), v_text, kb_query, keys.transpose(0, 1),
                               values.transpose(0, 1), null_k, null_v, d ** -0.5, -1.5, rec_fused)
    torch.testing.assert_close(got.transpose(1, 2), expected, rtol=0, atol=5e-3)
    torch.testing.assert_close(rec_fused.last_probs, rec_lib.last_probs, rtol=0, atol=1e-3)


def test_kernel_benchmark_runs_every_variant(tiny, tmp_path):
    K = _load("kb_attention_kernels")
    rows = K.run(20, 1, model=tiny)
    assert [r["variant"] for r in rows] == [v[0] for v in K.VARIANTS]
    assert rows[0]["record_max_abs_diff"] == 0.0
    for r in rows:
        assert r["ttft_s"] > 0 and r["ttft_empty_s"] > 0 and r["record_max_abs_diff"] < 0.05
