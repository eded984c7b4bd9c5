"""Synthetic KB QA generator: determinism, split disjointness, refusals, answers, paraphrases, eval files."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from kblam_integrations.kb.triple import Triple
from kblam_integrations.training.synthetic import (
    DEFAULT_MIX,
    ENTITY_TYPES,
    KINDS,
    PROPERTIES,
    REFUSAL,
    SHARED_VOCABULARY,
    QAExample,
    SyntheticKBGenerator,
    token_split,
    tokenize,
    write_eval_file,
)

DATA = Path(__file__).parent / "data"
REQUIRED_PROPERTIES = {"description", "purpose", "objectives", "founder", "location", "founding year", "members",
                       "product"}


def _world(split: str, seed: int, n_entities: int = 300, n_questions: int = 800):
    gen = SyntheticKBGenerator(split=split, seed=seed)
    kb = gen.make_kb(n_entities)
    questions = gen.make_questions(kb, n_questions)
    pad = gen.distractors(200, exclude_names={t.name for t in kb})
    return gen, kb, questions, pad


@pytest.fixture(scope="module")
def train_world():
    return _world("train", 0)


@pytest.fixture(scope="module")
def val_world():
    return _world("validation", 1)


def _texts(world) -> list[str]:
    _, kb, questions, pad = world
    out = [t.name for t in kb + pad] + [t.value for t in kb + pad]
    out += [name for q in questions for name, _ in q.asked]
    return out


def _template(question: str, name: str) -> str:
    return question.replace(name, "{n}").replace(name[:1].upper() + name[1:], "{n}")


# ----------------------------------------------------------------------------- basics


def test_refusal_constant():
    assert REFUSAL == "I'm sorry, I cannot find that information in the knowledge base."


def test_required_properties_and_types():
    assert REQUIRED_PROPERTIES <= set(PROPERTIES)
    assert set(ENTITY_TYPES) == {"organisation", "person", "place", "product", "project", "event"}
    assert {"occupation", "birthplace", "employer"} <= set(ENTITY_TYPES["person"])
    assert {"population", "country"} <= set(ENTITY_TYPES["place"])
    assert {"price", "manufacturer", "release date"} <= set(ENTITY_TYPES["product"])
    assert {"date", "venue", "organiser"} <= set(ENTITY_TYPES["event"])


def test_make_kb_unique_pairs_and_property_counts(train_world):
    _, kb, _, _ = train_world
    assert all(isinstance(t, Triple) for t in kb)
    pairs = [(t.name, t.property) for t in kb]
    assert len(pairs) == len(set(pairs))
    per_entity = Counter(t.name for t in kb)
    assert len(per_entity) == 300
    assert all(2 <= c <= 5 for c in per_entity.values())
    for t in kb:
        assert t.property in ENTITY_TYPES[t.extra["entity_type"]]
    gen = SyntheticKBGenerator(seed=3)
    kb1 = gen.make_kb(40, properties_per_entity=(1, 1))
    assert len(kb1) == 40 == len({t.name for t in kb1})


def test_names_are_varied_and_not_near_duplicates(train_world):
    _, kb, _, pad = train_world
    names = sorted({t.name for t in kb + pad})
    # no two names within one edit of each other (deletion neighbourhoods intersect iff distance <= 1)
    owner: dict[str, str] = {}
    for name in names:
        low = name.lower()
        for d in {low} | {low[:i] + low[i + 1:] for i in range(len(low))}:
            assert owner.setdefault(d, name) == name, f"{name!r} is one edit from {owner[d]!r}"
    # varied shapes: several first words and many distinct last words
    assert len({n.split()[-1] for n in names}) > len(names) / 3
    types = Counter(t.extra["entity_type"] for t in kb)
    assert set(types) == set(ENTITY_TYPES)


def test_values_vary_in_style(train_world):
    _, kb, _, _ = train_world
    values = [t.value for t in kb]
    assert any(v.isdigit() and len(v) == 4 for v in values)  # years
    assert any(any(m in v for m in ("January", "March", "July", "October")) for v in values)  # dates
    assert any(v.endswith(".") and len(v.split()) >= 8 for v in values)  # sentences
    assert any(v.startswith("to ") for v in values)  # purposes
    assert any("," in v and v.replace(",", "").isdigit() for v in values)  # counts
    lengths = [len(v.split()) for v in values]
    assert min(lengths) == 1 and max(lengths) >= 12


# ----------------------------------------------------------------------------- determinism


def test_determinism_by_seed():
    def run(split, seed):
        gen = SyntheticKBGenerator(split=split, seed=seed)
        kb = gen.make_kb(60)
        qs = gen.make_questions(kb, 120)
        pad = gen.distractors(30)
        return [t.to_dict() for t in kb], qs, [t.to_dict() for t in pad]

    assert run("train", 7) == run("train", 7)
    assert run("validation", 7) == run("validation", 7)
    assert run("train", 7)[0] != run("train", 8)[0]


# ----------------------------------------------------------------------------- splits


def test_splits_have_disjoint_names(train_world, val_world):
    train_names = {t.name for t in train_world[1] + train_world[3]}
    val_names = {t.name for t in val_world[1] + val_world[3]}
    assert train_names and val_names
    assert not train_names & val_names
    assert not {v for v in (t.value for t in train_world[1])} & {t.name for t in val_world[1]}


def test_splits_have_disjoint_vocabulary(train_world, val_world):
    train_tokens = {tok for text in _texts(train_world) for tok in tokenize(text)}
    val_tokens = {tok for text in _texts(val_world) for tok in tokenize(text)}
    overlap = (train_tokens & val_tokens) - SHARED_VOCABULARY
    assert not overlap, sorted(overlap)[:20]
    assert {token_split(t) for t in train_tokens} <= {"train", "shared"}
    assert {token_split(t) for t in val_tokens} <= {"validation", "shared"}
    # the content vocabulary, not the templates, carries most tokens
    assert len(train_tokens - SHARED_VOCABULARY) > 1000
    assert len(val_tokens - SHARED_VOCABULARY) > 500


def test_same_seed_different_splits_still_disjoint():
    a = SyntheticKBGenerator("train", 0).make_kb(100)
    b = SyntheticKBGenerator("validation", 0).make_kb(100)
    assert not {t.name for t in a} & {t.name for t in b}
    ta = {tok for t in a for tok in tokenize(t.name + " " + t.value)} - SHARED_VOCABULARY
    tb = {tok for t in b for tok in tokenize(t.name + " " + t.value)} - SHARED_VOCABULARY
    assert not ta & tb


# ----------------------------------------------------------------------------- questions


def test_mix_counts_and_kinds(train_world):
    _, kb, questions, _ = train_world
    assert len(questions) == 800
    counts = Counter(q.kind for q in questions)
    assert set(counts) <= set(KINDS)
    for kind, frac in DEFAULT_MIX.items():
        assert counts[kind] == round(800 * frac)
    gen = SyntheticKBGenerator(seed=5)
    kb = gen.make_kb(20)
    only = gen.make_questions(kb, 17, mix={"unanswerable": 1.0})
    assert len(only) == 17 and {q.kind for q in only} == {"unanswerable"}
    assert gen.make_questions(kb, 0) == []


def test_unanswerable_refers_to_absent_entity_or_property(train_world):
    _, kb, questions, _ = train_world
    pairs = {(t.name, t.property) for t in kb}
    names = {t.name for t in kb}
    absent_entity = absent_property = 0
    for q in questions:
        if q.kind != "unanswerable":
            assert q.answer != REFUSAL
            continue
        assert q.answer == REFUSAL
        assert q.triples == ()
        assert len(q.asked) == 1
        name, prop = q.asked[0]
        assert (name, prop) not in pairs
        assert name in q.question or name[:1].upper() + name[1:] in q.question
        if name in names:
            absent_property += 1
        else:
            absent_entity += 1
    assert absent_entity >= 20 and absent_property >= 20


def test_distractors_never_answer_unanswerable_questions(train_world):
    _, kb, questions, pad = train_world
    assert len(pad) == 200
    kb_names = {t.name for t in kb}
    assert not {t.name for t in pad} & kb_names
    asked = {pair for q in questions if q.kind == "unanswerable" for pair in q.asked}
    assert not {(t.name, t.property) for t in pad} & asked
    gen = SyntheticKBGenerator(seed=2)
    kb2 = gen.make_kb(10)
    excluded = {"Veltrano Dynamics"}
    pad2 = gen.distractors(7, exclude_names=excluded)
    assert len(pad2) == 7 and not {t.name for t in pad2} & (excluded | {t.name for t in kb2})


def test_answers_contain_values(train_world):
    _, kb, questions, _ = train_world
    kb_set = set(kb)
    for q in questions:
        assert isinstance(q, QAExample)
        assert q.asked == tuple((t.name, t.property) for t in q.triples) or q.kind == "unanswerable"
        if q.kind in ("simple", "open"):
            assert len(q.triples) == 1
        if q.kind == "multi":
            assert 2 <= len(q.triples) <= 3 and len(set(q.triples)) == len(q.triples)
        for t in q.triples:
            assert t in kb_set
            assert t.value in q.answer, (q.answer, t.value)
            assert t.name in q.question or t.name[:1].upper() + t.name[1:] in q.question


def test_simple_answers_are_sentences_with_varied_templates(train_world):
    gen, kb, _, _ = train_world
    qs = gen.make_questions(kb, 1500, mix={"simple": 1.0})
    answer_templates = defaultdict(set)
    for q in qs:
        t = q.triples[0]
        assert q.answer.endswith((".", "!", "?"))
        assert q.answer[:1].isupper() or q.answer[:1].isdigit()
        answer_templates[t.property].add(_template(q.answer.replace(t.value, "{v}"), t.name))
    for prop, templates in answer_templates.items():
        assert len(templates) >= 3, (prop, templates)


def test_paraphrase_diversity_per_property():
    gen = SyntheticKBGenerator(seed=11)
    kb = gen.make_kb(400, properties_per_entity=(5, 7))
    qs = gen.make_questions(kb, 4000, mix={"simple": 1.0})
    templates = defaultdict(set)
    for q in qs:
        t = q.triples[0]
        templates[t.property].add(_template(q.question, t.name))
    assert set(templates) == set(PROPERTIES)
    for prop, seen in templates.items():
        assert len(seen) >= 5, (prop, seen)
        # not only the generic "What is the {property} of {name}?" form
        assert any(prop not in s for s in seen) or prop in {"description"}, (prop, seen)
    founder = templates["founder"]
    assert "Who founded {n}?" in founder


def test_multi_and_open_questions(train_world):
    _, _, questions, _ = train_world
    multi = [q for q in questions if q.kind == "multi"]
    assert any(len(q.triples) == 3 for q in multi)
    assert any(len({t.name for t in q.triples}) == 1 for q in multi)
    assert any(len({t.name for t in q.triples}) > 1 for q in multi)
    opens = [q for q in questions if q.kind == "open"]
    assert len({_template(q.question, q.triples[0].name).replace(q.triples[0].property, "{p}") for q in opens}) >= 5


def test_questions_on_foreign_kb():
    kb = [Triple("Acme Corp", "founder", "Wile E. Coyote"), Triple("Acme Corp", "motto", "Beep beep."),
          Triple("Road Runner", "top speed", "very fast")]
    gen = SyntheticKBGenerator(seed=4)
    qs = gen.make_questions(kb, 60)
    pairs = {(t.name, t.property) for t in kb}
    for q in qs:
        for t in q.triples:
            assert t.value in q.answer
        if q.kind == "unanswerable":
            assert q.asked[0] not in pairs


# ----------------------------------------------------------------------------- eval file


def _check_eval_file(data: dict, n_questions: int | None = None) -> None:
    assert set(data) == {"triples", "questions"}
    triples = {(t["name"], t["property"]): t["value"] for t in data["triples"]}
    for t in data["triples"]:
        assert set(t) == {"name", "property", "value"}
        assert all(isinstance(t[k], str) and t[k].strip() for k in t)
    assert len(triples) == len(data["triples"])
    if n_questions is not None:
        assert len(data["questions"]) == n_questions
    for q in data["questions"]:
        assert set(q) == {"q", "name", "property", "answer"}
        assert isinstance(q["q"], str) and q["q"].strip()
        key = (q["name"], q["property"])
        if q["answer"] is None:
            assert key not in triples
        else:
            assert triples[key] == q["answer"]


def test_write_eval_file(tmp_path):
    path = tmp_path / "sub" / "eval.json"
    write_eval_file(path, n_entities=40, n_questions=50, seed=3)
    data = json.loads(path.read_text(encoding="utf-8"))
    _check_eval_file(data, 50)
    assert len({t["name"] for t in data["triples"]}) == 40
    answers = [q["answer"] for q in data["questions"]]
    assert answers.count(None) == 10
    # deterministic, and validation by default (disjoint from train names)
    write_eval_file(tmp_path / "again.json", 40, 50, seed=3)
    assert json.loads((tmp_path / "again.json").read_text()) == data
    train = SyntheticKBGenerator("train", 3).make_kb(40)
    assert not {t.name for t in train} & {t["name"] for t in data["triples"]}


def test_handwritten_kb_file():
    data = json.loads((DATA / "handwritten_kb.json").read_text(encoding="utf-8"))
    _check_eval_file(data)
    assert 20 <= len(data["triples"]) <= 30
    assert 25 <= len(data["questions"]) <= 40
    assert 5 <= sum(q["answer"] is None for q in data["questions"]) <= 8
    # a different style from the generator: mostly other property names
    props = {t["property"] for t in data["triples"]}
    assert len(props - set(PROPERTIES)) >= len(props) - 1
    names = {t["name"] for t in data["triples"]}
    absent = [q for q in data["questions"] if q["answer"] is None]
    assert any(q["name"] in names for q in absent) and any(q["name"] not in names for q in absent)


# ----------------------------------------------------------------------------- bad arguments


def test_bad_split_names_it():
    with pytest.raises(ValueError, match="test"):
        SyntheticKBGenerator(split="test")
    with pytest.raises(ValueError):
        SyntheticKBGenerator(seed="zero")  # type: ignore[arg-type]


@pytest.mark.parametrize("args", [(-1,), (2.5,), (True,), (5, (0, 2)), (5, (3, 2)), (5, (2, 99)), (5, (2,)),
                                  (5, "2-5")])
def test_make_kb_bad_arguments(args):
    with pytest.raises(ValueError):
        SyntheticKBGenerator().make_kb(*args)


def test_make_questions_bad_arguments():
    gen = SyntheticKBGenerator()
    kb = gen.make_kb(5)
    for kwargs in ({"mix": {"trivia": 1.0}}, {"mix": {"simple": -1.0}}, {"mix": {"simple": 0.0}},
                   {"mix": {"simple": float("nan")}}, {"mix": [("simple", 1.0)]}):
        with pytest.raises(ValueError):
            gen.make_questions(kb, 10, **kwargs)
    with pytest.raises(ValueError):
        gen.make_questions(kb, -1)
    with pytest.raises(ValueError):
        gen.make_questions([], 5)
    with pytest.raises(ValueError):
        gen.make_questions(kb[:1], 5, mix={"multi": 1.0})
    with pytest.raises(ValueError):
        gen.make_questions(["not a triple"], 5)  # type: ignore[list-item]
    assert len(gen.make_questions([], 4, mix={"unanswerable": 1})) == 4


def test_distractors_and_eval_file_bad_arguments(tmp_path):
    gen = SyntheticKBGenerator()
    with pytest.raises(ValueError):
        gen.distractors(-1)
    with pytest.raises(ValueError):
        gen.distractors(3, exclude_names="Veltrano Dynamics")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="nope"):
        write_eval_file(tmp_path / "x.json", 5, 5, split="nope")
    with pytest.raises(ValueError):
        write_eval_file(tmp_path / "x.json", 0, 5)
    assert not (tmp_path / "x.json").exists()


# ------------------------------------------------------------------ property aliases
@pytest.fixture(scope="module")
def alias_world():
    gen = SyntheticKBGenerator(split="train", seed=5, property_aliases=0.5)
    kb = gen.make_kb(300)
    return kb, gen.make_questions(kb, 800)


def test_alias_rate_zero_draws_what_the_plain_generator_draws():
    plain = SyntheticKBGenerator(split="train", seed=3)
    zero = SyntheticKBGenerator(split="train", seed=3, property_aliases=0.0)
    kb_a, kb_b = plain.make_kb(40), zero.make_kb(40)
    assert kb_a == kb_b
    assert plain.make_questions(kb_a, 60) == zero.make_questions(kb_b, 60)


def test_aliased_triples_keep_their_canonical_property(alias_world):
    from kblam_integrations.training.synthetic import PROPERTY_ALIASES

    kb, _ = alias_world
    aliased = [t for t in kb if "canonical_property" in t.extra]
    assert 0.35 < len(aliased) / len(kb) < 0.65
    for t in aliased:
        assert t.property in PROPERTY_ALIASES[t.extra["canonical_property"]]
    assert len({t.property for t in aliased}) > 60  # many different names, not one per property
    pairs = [(t.name, t.property) for t in kb]
    assert len(pairs) == len(set(pairs))


def test_questions_about_aliased_triples_ask_for_them_and_refusals_stay_refusals(alias_world):
    kb, questions = alias_world
    canonical = defaultdict(set)
    for t in kb:
        canonical[t.name].add(t.extra.get("canonical_property", t.property))
    asked_aliases = 0
    for ex in questions:
        if ex.kind == "unanswerable":
            for name, prop in ex.asked:  # never a property the entity has under another name
                assert prop not in canonical.get(name, set()), ex
            continue
        assert {(t.name, t.property) for t in ex.triples} == set(ex.asked)
        assert all(t in kb for t in ex.triples)
        asked_aliases += sum("canonical_property" in t.extra for t in ex.triples)
    assert asked_aliases > 100


def test_relation_aliases_never_appear_inside_questions(alias_world):
    from kblam_integrations.training.synthetic import _ALIAS_RELATIONS

    _, questions = alias_world
    for ex in questions:
        for t in ex.triples:
            if t.property in _ALIAS_RELATIONS.get(t.extra.get("canonical_property", ""), ()):
                assert f"the {t.property} of" not in ex.question, ex.question


@pytest.mark.parametrize("rate", [-0.1, 1.5, "0.5", True])
def test_bad_alias_rate_names_it(rate):
    with pytest.raises(ValueError, match="property_aliases"):
        SyntheticKBGenerator(property_aliases=rate)


def test_alias_rate_is_part_of_the_training_cache_names():
    from kblam_integrations.training.trainer import TrainConfig

    assert TrainConfig().pool_tag(0) == "0-2500"  # caches written before aliases stay valid
    assert TrainConfig(property_aliases=0.5).pool_tag(0) != TrainConfig(property_aliases=0.25).pool_tag(0)
