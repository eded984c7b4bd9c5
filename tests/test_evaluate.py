"""`kblam eval` metrics on a tiny chat model (mechanics) — the trained numbers live in docs/."""

from __future__ import annotations

import json

import pytest

from kblam_integrations.errors import KBFormatError
from kblam_integrations.training.evaluate import (answer_is_correct, evaluate_file, is_refusal, load_eval_file,
                                                  normalise)
from kblam_integrations.training.synthetic import write_eval_file

from .conftest import tiny_chat_kblam


def test_eval_file_round_trip_and_metric_ranges(tmp_path):
    path = tmp_path / "eval.json"
    write_eval_file(path, n_entities=6, n_questions=10, split="validation", seed=1)
    triples, questions = load_eval_file(path)
    assert triples and questions
    model = tiny_chat_kblam()
    for kb_size in (10, 40):
        m = evaluate_file(model, path, kb_size=kb_size, mode="grounded", generate=False, progress=False)
        assert m["kb_size"] == kb_size
        assert 0.0 <= m["top1"] <= m["top5"] <= 1.0
        assert m["answerable"] + m["unanswerable"] == len(questions)
        assert m["refusal_precision"] is not None


def test_generation_metrics_run(tmp_path):
    path = tmp_path / "eval.json"
    write_eval_file(path, n_entities=3, n_questions=4, split="validation", seed=2)
    m = evaluate_file(tiny_chat_kblam(), path, kb_size=8, mode="kblam", max_new_tokens=3, progress=False)
    assert 0.0 <= m["answer_accuracy"] <= 1.0


def test_rules():
    assert normalise("  Port-Alvessa, 1998! ") == "port alvessa 1998"
    assert is_refusal("I'm sorry, I cannot find that information in the knowledge base.")
    assert not is_refusal("The founder is Ada.")


def test_answer_rule_needs_exact_short_values_and_accepts_rephrased_sentences():
    # names, numbers, dates: the exact (normalised) text
    assert answer_is_correct("Mehmet Mercer", "The mayor of Port Kingswood is Mehmet Mercer.")
    assert not answer_is_correct("Mehmet Mercer", "The mayor of Port Kingswood is Mehmet Ozturk.")
    assert answer_is_correct("$601,000", "Its budget is $601,000.")
    assert not answer_is_correct("$601,000", "Its budget is $610,000.")
    # long values: most of their words, in order, count (ROUGE-L recall >= 0.5)
    value = "It aims to stack 19,333 ladders, to train 8 couriers and to improve scanners in Nalilton Springs."
    assert answer_is_correct(value, "Its objectives are to stack 19,333 ladders, train 8 couriers and improve "
                                    "scanners in Nalilton Springs.")
    assert not answer_is_correct(value, "It aims to improve the lives of couriers.")


@pytest.mark.parametrize("content,field", [
    ("not json", None),
    (json.dumps({"triples": []}), None),
    (json.dumps({"triples": [], "questions": [{"q": "x", "name": "", "property": "p"}]}), "name"),
    (json.dumps({"triples": [], "questions": [{"q": "x", "name": "n", "property": "p", "answer": 3}]}), "answer"),
])
def test_bad_eval_files(tmp_path, content, field):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(KBFormatError) as info:
        load_eval_file(path)
    assert info.value.field == field


def test_refusal_calibration_sets_the_ratio(tmp_path):
    from kblam_integrations.training.evaluate import calibrate_refusal_ratio

    path = tmp_path / "cal.json"
    write_eval_file(path, n_entities=6, n_questions=12, split="train", seed=3)
    model = tiny_chat_kblam()
    ratio, m = calibrate_refusal_ratio(model, path, kb_size=20)
    assert model.config.refusal_ratio == ratio > 0
    assert 0.0 <= m["f1"] <= 1.0
