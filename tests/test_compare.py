"""The KBLaM vs. RAG comparison (benchmarks/compare.py) and the RAG baseline it measures.

The drift tests are the point: the RAG baseline must answer through grounded mode's
answer step, so that the comparison measures retrieval, not two answer paths. They run
the real code on the tiny in-code chat model (random Llama, character tokenizer, hash
sentence encoder); the ``slow`` ones use the shipped SmolLM2 + MiniLM weights.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

from kblam_integrations.baselines.rag import FaissRAG, RAGEvalModel, calibrate_rag_refusal
from kblam_integrations.kb.triple import Triple
from kblam_integrations.model.grounded_answer import answer_from_facts, answer_rules
from kblam_integrations.model.grounding import fact_sentence, fact_start
from tests.conftest import tiny_chat_kblam

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
DATA = ROOT / "tests" / "data"
KB = [Triple("Zorblax Corp", "founder", "Mira Tenn"), Triple("Zorblax Corp", "location", "Quellport"),
      Triple("Veni Lake", "depth", "42 m"), Triple("Ost Tower", "architect", "Ada Rell")]
QUESTION = "Who founded Zorblax Corp?"


def _bench():
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    return importlib.import_module("compare")


@pytest.fixture(scope="module")
def tiny():
    model = tiny_chat_kblam()
    # character-level prompts: grounded ones (<= 3 facts) fit, the in-context KB of 10 triples must not
    model.backbone.config.max_position_embeddings = 600
    model.config.refusal_classifier = None
    model.config.refusal_ratio = float("inf")  # never refuse: the answer step itself is compared
    return model


# ------------------------------------------------------------ the shared answer step
def test_grounded_mode_and_rag_answer_through_the_same_step(tiny):
    """Same facts in, same text out: grounded mode, answer_from_facts and FaissRAG."""
    for k in (1, 3):
        grounded = tiny.generate(QUESTION, kb=KB, mode="grounded", grounded_k=k, max_new_tokens=12)
        facts = list(grounded.triples)
        assert len(facts) == k
        shared = answer_from_facts(tiny, QUESTION, facts, max_new_tokens=12)
        assert shared.text == grounded.text
        assert shared.prompt_tokens == grounded.prompt_tokens
        assert shared.completion_tokens == grounded.completion_tokens
        rag = FaissRAG(tiny, facts, None, k=k)
        rag.retrieve = lambda question, k=None, _f=facts: [(t, 1.0) for t in _f]  # the facts grounded used
        assert rag.answer(QUESTION, max_new_tokens=12).text == grounded.text


def test_answer_rules_are_grounded_modes(tiny):
    prefix, stop, end = answer_rules(tiny, KB[:2], stop=["###"])
    assert prefix == fact_start(KB[0]) == "The founder of Zorblax Corp is"
    assert stop == ["###", "\n"] and end == ["Mira Tenn"]
    tiny.config.grounded_answer_prefix = False
    try:
        assert answer_rules(tiny, KB[:2]) == (None, [], [])
    finally:
        tiny.config.grounded_answer_prefix = True


# ------------------------------------------------------------------- FaissRAG itself
def test_faiss_rag_retrieves_exact_cosine_and_refuses_below_the_threshold(tiny):
    rag = FaissRAG.from_kb(tiny, KB, index_text="key", k=3)
    assert rag.index.ntotal == len(KB)
    hits = rag.retrieve(KB[2].key_text)  # hash encoder: the same text, the same vector
    assert hits[0][0] == KB[2] and hits[0][1] == pytest.approx(1.0, abs=1e-5) and len(hits) == 3
    assert [c for _, c in hits] == sorted((c for _, c in hits), reverse=True)
    fact = FaissRAG.from_kb(tiny, KB, index_text="fact")
    assert fact.retrieve(fact_sentence(KB[3]))[0][0] == KB[3]
    res = rag.answer(KB[2].key_text, max_new_tokens=4)
    assert res.mode == "rag" and res.triples[0] == KB[2] and res.text.startswith(fact_start(KB[2]))
    rag.min_cosine = 1.01
    refused = rag.answer(KB[2].key_text, max_new_tokens=4)
    assert refused.text == tiny.config.refusal and refused.completion_tokens == 0
    assert FaissRAG.from_kb(tiny, []).retrieve(QUESTION) == []


def test_rag_eval_model_runs_under_evaluate(tiny):
    from kblam_integrations.training.evaluate import evaluate, load_eval_file

    triples, questions = load_eval_file(DATA / "synthetic_validation.json")
    metrics = evaluate(RAGEvalModel(tiny, index_text="key"), triples, questions[:12], kb_size=20, generate=False)
    assert metrics["answerable"] + metrics["unanswerable"] == 12 and 0 <= metrics["top1"] <= metrics["top5"] <= 1
    cos, scores = calibrate_rag_refusal(tiny, DATA / "synthetic_dev_calibration.json", kb_size=20)
    assert 0.05 <= cos <= 0.95 and 0 <= scores["f1"] <= 1


# ------------------------------------------------------------------------ benchmark
def test_wilson_and_mcnemar():
    B = _bench()
    lo, hi = B.wilson(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)
    assert B.wilson(0, 0) is None and B.wilson(0, 5)[0] == 0.0 and B.wilson(5, 5)[1] == 1.0
    assert B.mcnemar_p("1111", "1111") == 1.0
    assert B.mcnemar_p("1" * 10, "0" * 10) == pytest.approx(2 / 2 ** 10)
    assert B.mcnemar_p("10", "01") == 1.0 and B.mcnemar_p("1", "10") is None


def test_token_timer_does_not_count_the_answer_prefix(tiny):
    B = _bench()
    timer = B.TokenTimer()
    res = tiny.generate(QUESTION, kb=KB[:1], mode="grounded", max_new_tokens=6, streamer=timer)
    prefix = tiny.tokenizer(fact_start(KB[0]), add_special_tokens=False)["input_ids"]
    assert timer.generated == res.completion_tokens - len(prefix) > 0  # the prefix is not generated
    assert timer.ttft > 0


def test_benchmark_rag_family_is_faiss_rag(tiny):
    """The comparison's RAG rows come from FaissRAG.answer (which is answer_from_facts)."""
    B = _bench()
    fam = B.RAGFamily(tiny, ["rag-faiss-key-k1", "rag-faiss-key-k3"], 6, "key", None)
    rag = fam.encode_kb(KB)
    assert isinstance(rag, FaissRAG) and rag.index_text == "key"
    first = fam.generate(QUESTION, kb=rag)
    assert first.text == rag.answer(QUESTION, k=1, max_new_tokens=6).text == fam.log["rag-faiss-key-k1"][0]["text"]
    assert fam.log["rag-faiss-key-k3"][0]["k"] == 3 and len(fam.log["rag-faiss-key-k3"][0]["used"]) == 3
    assert fam.log["rag-faiss-key-k3"][0]["text"] == rag.answer(QUESTION, k=3, max_new_tokens=6).text


def test_run_family_rows_on_the_same_questions(tiny):
    B = _bench()
    from kblam_integrations.training.evaluate import load_eval_file

    triples, questions = load_eval_file(DATA / "synthetic_validation.json")
    sources = [("synthetic_validation", triples, questions[:8])]
    thresholds = {"key": {"min_cosine": 0.3}}
    rows = []
    for name, methods in B.families_for(list(B.METHODS)):
        if name == "rag-fact":
            continue
        rows += B.run_family(tiny, name, methods, sources, 10, max_new_tokens=4, seed=0, thresholds=thresholds,
                             icl_questions=3)
    by = {r["method"]: r for r in rows}
    assert set(by) == {"kblam-grounded", "kblam", "rag-faiss-key-k1", "rag-faiss-key-k3", "icl"}
    n_ans = sum(q["answer"] is not None for q in questions[:8])
    for m in ("kblam-grounded", "kblam", "rag-faiss-key-k1", "rag-faiss-key-k3"):
        r = by[m]
        assert r["answerable"] == n_ans and r["n_questions"] == 8 and len(r["correct_bits"]) == n_ans
        assert r["answer_accuracy_ci"][0] <= r["answer_accuracy"] <= r["answer_accuracy_ci"][1]
        assert r["prep_s"] > 0 and r["peak_rss_mb"] >= r["base_rss_mb"] > 0
        assert r["top1_used"] is not None and 0 <= r["rank_top1"] <= r["rank_top5"] <= 1
    assert by["rag-faiss-key-k3"]["k"] == 3 and by["kblam-grounded"]["k"] is None  # None: as many as asked
    assert by["rag-faiss-key-k1"]["refusal_min_cosine"] == 0.3
    # 10 fact sentences do not fit the tiny model's 256-token context
    assert by["icl"]["fits"] is False and "does not fit" in by["icl"]["note"]


def _rows(run_id="r1", answerable=120):
    rows = []
    for size in (10, 100):
        for m, bits in (("kblam-grounded", "1" * (answerable - 20) + "0" * 20),
                        ("kblam", "0" * answerable),
                        ("rag-faiss-key-k1", "1" * (answerable - 30) + "0" * 30)):
            ok = bits.count("1")
            rows.append({"dataset": "synthetic", "method": m, "kb_size": size, "run_id": run_id,
                         "answerable": answerable, "answer_correct": ok, "answer_accuracy": ok / answerable,
                         "answer_accuracy_ci": _bench().wilson(ok, answerable), "correct_bits": bits,
                         "ttft_s": 0.1, "prep_s": 0.01, "fits": True, "trained_weights": True})
    rows.append({"dataset": "synthetic", "method": "icl", "kb_size": 1000, "run_id": run_id, "fits": False,
                 "note": "does not fit in the context window", "answer_accuracy": None})
    return rows


def test_report_findings_and_bar(tmp_path):
    B = _bench()
    data = {"meta": {"run_id": "r1", "command": "python benchmarks/compare.py --x", "threads": 2,
                     "questions_files": ["tests/data/a.json"]}, "rows": _rows()}
    out = tmp_path / "c.json"
    out.write_text(json.dumps(data))
    B.report(out, plots=True)
    text = (tmp_path / "c.md").read_text()
    assert "Run `r1`" in text and "| rag-faiss-key-k1 | 100 | 0.75 [" in text and "does not fit" in text
    assert "Not the full comparison" not in text
    assert "McNemar p = 0.002: grounded KBLaM is better" in text  # 10 discordant pairs, all one way
    assert (tmp_path / "compare_accuracy.png").stat().st_size > 1000
    assert B.check_bar(data) == []
    assert any("2 runs" in p for p in B.check_bar({"rows": _rows() + _rows("r2")}))
    assert any("80 answerable" in p for p in B.check_bar({"rows": _rows(answerable=80)}))


# -------------------------------------------------------------------- real models
@pytest.mark.slow
def test_shipped_model_rag_and_grounded_agree_on_the_same_fact():
    """With the shipped weights: grounded mode's answer equals the RAG answer step on the fact grounded used."""
    from kblam_integrations.model.kblam_model import KBLaMModel
    from kblam_integrations.training.evaluate import load_eval_file

    model = KBLaMModel.from_pretrained().eval()
    triples, questions = load_eval_file(DATA / "synthetic_validation.json")
    kb = triples[:40]
    asked = [q for q in questions if q["answer"] is not None and any(
        (t.name, t.property) == (q["name"], q["property"]) for t in kb)][:3]
    assert asked
    for q in asked:
        grounded = model.generate(q["q"], kb=kb, mode="grounded", max_new_tokens=32)
        if grounded.text == model.config.refusal:
            continue
        # grounded states as many facts as it judged asked (see extra_fact_margin)
        assert answer_from_facts(model, q["q"], grounded.triples, asked=len(grounded.triples),
                                 max_new_tokens=32).text == grounded.text
    rag = FaissRAG.from_kb(model, kb, index_text="key", k=1)
    hit = rag.retrieve(asked[0]["q"])[0][0]
    assert rag.answer(asked[0]["q"], max_new_tokens=32).text == answer_from_facts(
        model, asked[0]["q"], [hit], max_new_tokens=32).text


@pytest.mark.slow
def test_compare_script_end_to_end(tmp_path):
    B = _bench()
    out = tmp_path / "c.json"
    assert B.main(["--sizes", "10", "--max-questions", "3", "--methods", "kblam-grounded", "rag-faiss-key-k1",
                   "--datasets", "synthetic", "--questions-file", str(DATA / "synthetic_validation.json"),
                   "--max-new-tokens", "8", "--out", str(out), "--no-plots"]) == 0
    data = json.loads(out.read_text())
    assert {r["method"] for r in data["rows"]} == {"kblam-grounded", "rag-faiss-key-k1"}
    assert {r["run_id"] for r in data["rows"]} == {data["meta"]["run_id"]}
    assert data["meta"]["git"]["commit"] and data["meta"]["threads"] == 2
    rag = next(r for r in data["rows"] if r["method"] == "rag-faiss-key-k1")
    assert 0 < rag["refusal_min_cosine"] < 1 and rag["answerable"] == 3 and rag["small_sample"]
