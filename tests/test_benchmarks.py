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
    assert S.check_targets([empty, row])[0].startswith("TTFT at 10 triples")


def test_kb_scaling_run_in_process(tiny, monkeypatch, tmp_path):
    S = _load("kb_scaling")
    monkeypatch.setattr(S.C, "load_model", lambda weights=None: (tiny, False))
    rows = S.run([0, 5, 50, 500], isolate=False, repeats=1, encode_sample=2, progress=False)
    icl = [r for r in rows if r["method"] == "icl"]
    assert icl[0]["fits"] is True and icl[0]["ttft_s"] > 0
    assert icl[-1]["fits"] is False and icl[-1]["ttft_s"] is None and "does not fit" in icl[-1]["note"]
    S.write_markdown(tmp_path / "k.md", rows, S.check_targets(rows), "cmd")
    assert "| kblam | 5 |" in (tmp_path / "k.md").read_text()


@pytest.mark.parametrize("method", ["kblam", "kblam-grounded", "icl"])
def test_compare_method_tiny(tiny, method):
    B = _load("compare")
    kb, questions = B.synthetic_case(10, 4)
    assert len(kb) == 10 and len(questions) == 4
    row = B.run_method(tiny, method, kb, questions, max_new_tokens=4)
    assert row["kb_size"] == 10 and row["n_questions"] == 4
    assert row["peak_rss_mb"] > 0
    if method == "icl":  # 10 facts do not fit the tiny model's 256-token context
        assert row["fits"] is False and row["ttft_s"] is None
    else:
        assert row["ttft_s"] > 0 and row["prep_s"] >= 0
        assert 0 <= row["retrieval_accuracy"] <= 1 or row["retrieval_accuracy"] is None
        assert 0 <= row["answer_accuracy"] <= 1


def test_compare_reports(tmp_path):
    B = _load("compare")
    rows = [{"dataset": "synthetic", "method": m, "kb_size": n, "ttft_s": 0.1 * n, "peak_rss_mb": 1000 + n,
             "prep_s": 0.01 * n, "answer_accuracy": 0.5, "retrieval_accuracy": 0.7, "threads": 1,
             "trained_weights": True} for m in ("kblam", "rag") for n in (10, 100)]
    plots = B.write_plots(rows, tmp_path)
    assert [p.name for p in plots] == ["compare_cost.png", "compare_accuracy.png"]
    assert all(p.stat().st_size > 1000 for p in plots)
    B.write_markdown(tmp_path / "compare.md", rows, plots, "cmd")
    text = (tmp_path / "compare.md").read_text()
    assert "| synthetic | rag | 100 |" in text and "compare_cost.png" in text
    assert B.is_refusal("I'm sorry, I cannot find that.") and not B.is_refusal("Paris.")


@pytest.mark.slow
def test_compare_real_model_kb10(smollm2_kblam):
    B = _load("compare")
    kb, questions = B.synthetic_case(10, 2)
    for method in B.METHODS:
        row = B.run_method(smollm2_kblam, method, kb, questions, max_new_tokens=4)
        assert row["fits"] and row["ttft_s"] > 0, method
    demo_kb, demo_qs = B.demo_case()
    assert len(demo_kb) > 10 and sum(q["target"] is not None for q in demo_qs) >= 8
