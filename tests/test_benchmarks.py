"""Smoke tests of benchmarks/kb_scaling.py and benchmarks/compare.py at tiny sizes.

The fast ones use the tiny in-code chat model (random Llama, character tokenizer with a
256-token context, hash sentence encoder); the RAG path needs the real MiniLM (slow).
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


ROW_KEYS = {"dataset", "method", "kb_size", "fits", "ttft_s", "tokens_per_s", "peak_rss_mb", "added_rss_mb",
            "base_rss_mb", "prep_s", "answer_accuracy", "retrieval_accuracy", "refusal_precision", "refusal_recall",
            "n_questions"}


def test_compare_run_methods_tiny(tiny):
    B = _load("compare")
    kb, questions = B.synthetic_case(10, 4)
    assert len(kb) == 10 and len(questions) == 4 and sum(q["answer"] is None for q in questions) == 1
    assert all(q["target"] in {t.id for t in kb} for q in questions if q["answer"] is not None)
    rows = B.run_methods(tiny, ["kblam", "kblam-grounded", "icl"], kb, questions, max_new_tokens=4)
    assert [r["method"] for r in rows] == ["kblam", "kblam-grounded", "icl"]
    for row in rows:
        assert ROW_KEYS - {"dataset"} <= set(row), ROW_KEYS - set(row)
        assert row["kb_size"] == 10 and row["n_questions"] == 4
    kblam, grounded, icl = rows
    for row in (kblam, grounded):  # through KBLaMLLM: timed, scored, memory measured
        assert row["fits"] and row["ttft_s"] > 0 and row["prep_s"] > 0
        assert row["peak_rss_mb"] >= row["base_rss_mb"] > 0
        assert 0 <= row["answer_accuracy"] <= 1 and 0 <= row["retrieval_accuracy"] <= 1
        assert len(row["samples"]) == 4
    assert grounded["prep_shared_with"] == "kblam" and grounded["prep_s"] == kblam["prep_s"]
    # 10 facts do not fit the tiny model's 256-token context: a "does not fit" row, nothing measured
    assert icl["fits"] is False and icl["note"] == B.DOES_NOT_FIT
    assert icl["prompt_tokens"] + 4 > icl["context_limit"] == 256
    assert icl["ttft_s"] is None and icl["answer_accuracy"] is None and icl["peak_rss_mb"] is None


def test_compare_icl_fit_boundary():
    B = _load("compare")
    tiny = tiny_chat_kblam()
    tiny.backbone.config.max_position_embeddings = 1024  # room for a few facts (one token per character)
    n = B.largest_fitting_synthetic(tiny, 2, 0, 4, upper=64)
    assert 0 < n < 64
    kb, qs = B.synthetic_case(n, 2)
    fits, tokens = B.icl_fits(tiny, kb, qs, 4)
    assert fits and tokens + 4 <= 1024
    kb, qs = B.synthetic_case(n + 1, 2)
    assert not B.icl_fits(tiny, kb, qs, 4)[0]
    row = B.run_methods(tiny, ["icl"], *B.synthetic_case(n, 2), max_new_tokens=4)[0]
    assert row["fits"] and row["ttft_s"] > 0 and row["peak_rss_mb"] > 0


def _report_rows(icl_ttft: float) -> list[dict]:
    rows = [{"dataset": "synthetic", "method": m, "kb_size": n, "ttft_s": 0.1, "tokens_per_s": 20.0,
             "peak_rss_mb": 1000 + n / 100, "added_rss_mb": 1 + n / 100, "base_rss_mb": 1000, "prep_s": 0.01 * n,
             "answer_accuracy": 0.2 if m.startswith("kblam") else 0.6, "retrieval_accuracy": 0.7,
             "refusal_precision": 0.5, "refusal_recall": 0.5, "n_questions": 4, "n_answerable": 3, "fits": True,
             "threads": 1, "trained_weights": True}
            for m in ("kblam", "kblam-grounded", "rag") for n in (10, 100, 1000, 10000)]
    rows.append(dict(rows[0], method="icl", kb_size=100, ttft_s=icl_ttft, prompt_tokens=2000))
    rows.append({"dataset": "synthetic", "method": "icl", "kb_size": 1000, "fits": False, "prompt_tokens": 18000,
                 "context_limit": 8192, "note": "does not fit in the context window", "n_questions": 4})
    rows.append(dict(rows[0], dataset="real", kb_size=51, n_questions=24))
    return rows


def test_compare_reports_and_findings(tmp_path):
    B = _load("compare")
    found = B.findings(_report_rows(icl_ttft=2.0))
    assert any("20.0x lower" in f and "PASS" in f for f in found)
    assert any("does not fit" in f and "1,000 triples" in f for f in found)
    assert any("KBLaM loses" in f and "0.20 vs. RAG 0.60" in f for f in found)
    assert any("memory" in f and "linear or better" in f for f in found)
    assert any(f.startswith("**Cost against RAG at 10,000 triples**") and "+101 MB vs. +101 MB" in f for f in found)
    assert any("20.0x lower" not in f and "FAIL" in f for f in B.findings(_report_rows(icl_ttft=0.3)))
    data = {"meta": {"command": "python benchmarks/compare.py --x"}, "rows": _report_rows(2.0)}
    plots = B.write_plots(data["rows"], tmp_path)
    assert [p.name for p in plots] == ["compare_cost.png", "compare_accuracy.png"]
    assert all(p.stat().st_size > 1000 for p in plots)
    B.write_markdown(tmp_path / "compare.md", data, plots)
    text = (tmp_path / "compare.md").read_text()
    assert "`python benchmarks/compare.py --x`" in text and "| rag | 100 |" in text and "compare_cost.png" in text
    assert "| icl | 1000 | – |" in text and "Real-text KB" in text
    assert "UNTRAINED" not in text  # the "does not fit" row loads no model: it says nothing about the weights
    B.write_markdown(tmp_path / "u.md", {"meta": {}, "rows": [dict(r, trained_weights=False) for r in data["rows"]]}, [])
    assert "UNTRAINED" in (tmp_path / "u.md").read_text()
    assert B.is_refusal("I'm sorry, I cannot find that.") and not B.is_refusal("Paris.")


@pytest.mark.slow
def test_compare_real_case():
    B = _load("compare")
    kb, questions = B.real_case()
    assert len(kb) >= 40 and len(questions) == 24
    assert sum(q["answer"] is None for q in questions) == 6
    assert all(q["target"] is not None for q in questions if q["answer"] is not None)  # the extractor found them


@pytest.mark.slow
def test_compare_script_end_to_end(tmp_path):
    """The script itself on the real backbone: subprocess jobs, "does not fit" rows, --merge, --report-only."""
    B = _load("compare")
    out = tmp_path / "c.json"
    common = ["--questions", "2", "--max-new-tokens", "4", "--datasets", "synthetic", "--no-icl-max",
              "--threads", "2", "--out", str(out), "--no-plots"]
    assert B.main(["--sizes", "10", "1000", "10000", "--methods", "icl", *common]) == 0
    data = json.loads(out.read_text())
    assert data["meta"]["command"].startswith("python benchmarks/compare.py --sizes 10 1000 10000")
    icl = {r["kb_size"]: r for r in data["rows"]}
    assert set(icl) == {10, 1000, 10000}
    assert icl[10]["fits"] and icl[10]["ttft_s"] > 0 and icl[10]["peak_rss_mb"] > icl[10]["model_rss_mb"] * 0.9
    assert icl[1000]["fits"] is False and icl[1000]["prompt_tokens"] > 8192 and icl[1000]["ttft_s"] is None
    assert icl[10000]["fits"] is False and "already 1000 triples" in icl[10000]["note"]
    assert B.main(["--sizes", "10", "--methods", "kblam", "--no-isolate", "--merge", *common]) == 0
    data = json.loads(out.read_text())
    assert sorted((r["method"], r["kb_size"]) for r in data["rows"]) == [
        ("icl", 10), ("icl", 1000), ("icl", 10000), ("kblam", 10)]
    for row in data["rows"]:
        assert ROW_KEYS <= set(row), ROW_KEYS - set(row)
    assert data["meta"]["updates"][0]["methods"] == ["kblam"]
    (tmp_path / "c.md").unlink()
    assert B.main(["--report-only", "--out", str(out), "--no-plots"]) == 0
    assert "| icl | 1000 | – |" in (tmp_path / "c.md").read_text()


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
