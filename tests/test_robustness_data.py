"""Robustness benchmark data (benchmarks/robustness_data.py): deterministic, correlated, answerable."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections import Counter
from pathlib import Path

import pytest

from kblam_integrations.training.evaluate import load_eval_file, normalise

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"


def _module():
    spec = importlib.util.spec_from_file_location("robustness_data", ROOT / "benchmarks" / "robustness_data.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("robustness_data", mod)
    spec.loader.exec_module(mod)
    return mod


RD = _module()
FILES = {"correlated": DATA / "robustness_correlated.json", "independent": DATA / "robustness_independent.json",
         "catalogue": DATA / "robustness_catalogue.json"}


@pytest.fixture(scope="module")
def correlated():
    return RD.correlated_kb()


@pytest.fixture(scope="module")
def catalogue():
    return RD.product_catalogue()


def test_generators_are_deterministic(correlated, catalogue):
    assert RD.correlated_kb() == correlated
    assert RD.product_catalogue() == catalogue
    assert RD.correlated_kb(seed=20) != correlated
    assert RD.product_catalogue(seed=24) != catalogue


def test_committed_files_are_the_generators_output(correlated, catalogue, tmp_path):
    assert json.loads(FILES["correlated"].read_text(encoding="utf-8")) == correlated
    assert json.loads(FILES["catalogue"].read_text(encoding="utf-8")) == catalogue
    data = RD.independent_kb(tmp_path / "ind.json", n_triples=len(correlated["triples"]),
                             n_questions=len(correlated["questions"]))
    assert json.loads(FILES["independent"].read_text(encoding="utf-8")) == data


def test_near_duplicate_names_occur_and_are_asked(correlated):
    names = {t["name"] for t in correlated["triples"]}
    pairs = correlated["meta"]["near_duplicate_pairs"]
    assert len(pairs) >= 30
    for short, long in pairs:
        assert long.startswith(short + " ") and short in names and long in names
    # e.g. "X Institute" / "X Institute of Art": both twins asked the same property, adjacent
    qs = correlated["questions"]
    twin_of = {a: b for a, b in pairs} | {b: a for a, b in pairs}
    adjacent = sum(1 for a, b in zip(qs, qs[1:]) if twin_of.get(a["name"]) == b["name"]
                   and a["property"] == b["property"] and a["answer"] and b["answer"])
    assert adjacent >= 50
    assert sum(q["tag"] == "near_duplicate" for q in qs) >= 100


def test_correlated_kb_shares_entities_and_similar_values(correlated):
    triples = correlated["triples"]
    per_name = Counter(t["name"] for t in triples)
    assert min(per_name.values()) == 6 and len(triples) >= 1000
    founders = Counter(t["value"] for t in triples if t["property"] == "founder")
    assert founders.most_common(1)[0][1] >= 3  # one person founded several organisations
    cities = Counter(t["value"] for t in triples if t["property"] == "location")
    assert len(cities) <= 14
    years = {t["value"] for t in triples if t["property"] == "founding year"}
    assert years <= {str(y) for y in range(1990, 2000)} and len(years) == 10
    # a person is the value of triples of several entities *and* several properties
    execs = {t["value"] for t in triples if t["property"] == "chief executive"}
    assert execs & set(founders)


@pytest.mark.parametrize("key", sorted(FILES))
def test_answers_are_in_the_kb_and_unanswerables_are_not(key):
    triples, questions = load_eval_file(FILES[key])  # the loader behind kblam eval
    value = {(t.name, t.property): t.value for t in triples}
    assert len(value) == len(triples)  # (name, property) pairs are unique
    n_ans = sum(q["answer"] is not None for q in questions)
    assert n_ans >= 200 and len(triples) >= 1000
    assert 0.15 <= 1 - n_ans / len(questions) <= 0.25
    names = {t.name for t in triples}
    for q in questions:
        if q["answer"] is None:
            assert (q["name"], q["property"]) not in value
            if key != "independent":  # ours ask a property the named entity lacks
                assert q["name"] in names
        else:
            assert value[(q["name"], q["property"])] == q["answer"]
        if key != "independent":
            assert normalise(q["name"]) in normalise(q["q"])


def test_unanswerable_twins_have_the_property(correlated):
    value = {(t["name"], t["property"]) for t in correlated["triples"]}
    twin_of = {a: b for a, b in correlated["meta"]["near_duplicate_pairs"]}
    twin_of |= {b: a for a, b in twin_of.items()}
    hard = [q for q in correlated["questions"] if q["tag"] == "absent_twin_has_it"]
    assert len(hard) >= 30
    assert all((twin_of[q["name"]], q["property"]) in value for q in hard)


def test_catalogue_is_numeric_and_written_apart(catalogue):
    from kblam_integrations.training.synthetic import PROPERTIES

    props = Counter(t["property"] for t in catalogue["triples"])
    assert {"retail price", "weight", "battery life", "release year", "SKU"} <= set(props)
    numeric = [t for t in catalogue["triples"] if t["property"] != "category"]
    assert all(any(c.isdigit() for c in t["value"]) for t in numeric)
    assert len(set(props) - set(PROPERTIES)) >= 5  # property names the synthetic generator never uses
    corded = [q for q in catalogue["questions"] if q["answer"] is None and q["property"] == "battery life"]
    assert corded  # e.g. the battery life of a kettle
