"""Evaluation files for the robustness benchmark (issue 19, outcomes 3 and 4).

Every file has the format of ``tests/data/synthetic_validation.json`` (what
:func:`kblam_integrations.training.evaluate.load_eval_file` reads): ``{"triples": [{"name",
"property", "value"}], "questions": [{"q", "name", "property", "answer"}]}`` with
``answer`` null for unanswerable questions, plus a ``tag`` per question (ignored by the
loader) and a ``meta`` object. Generators are seeded and deterministic.

* :func:`correlated_kb`: organisations whose triples are *correlated*: every entity has six
  of seven properties (shared entities: many triples per name); founders, chief executives
  and cities come from small pools, so the same person or city is the value of many
  triples; most names come in near-duplicate pairs (``"Harlow Institute"`` /
  ``"Harlow Institute of Art"``); ``founding year`` takes one of ten close values
  (1990-1999). Questions come in blocks that ask the same property of both members of a
  pair (so both triples are in the same evaluated KB), and ~20% ask a property the named
  entity lacks (preferably one its near-duplicate partner has). Base words come from the
  synthetic generator's *validation* split, so no name was trained on.
* :func:`independent_kb`: the matched independent KB: the project's own synthetic
  generator (:func:`kblam_integrations.training.synthetic.write_eval_file`, validation
  split) with about as many triples and questions.
* :func:`product_catalogue`: an out-of-domain catalogue written apart from the synthetic
  templates: consumer products with numeric values (retail price, weight in grams,
  battery life in hours, release year, SKU code, warranty, power rating), catalogue-style
  questions; unanswerable questions ask e.g. the battery life of a corded kettle.

Regenerate the committed files with::

    python benchmarks/robustness_data.py          # writes tests/data/robustness_*.json
"""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CORRELATED_FILE = DATA / "robustness_correlated.json"
INDEPENDENT_FILE = DATA / "robustness_independent.json"
CATALOGUE_FILE = DATA / "robustness_catalogue.json"

# ------------------------------------------------------------------------ correlated KB
ORG_KINDS = ("Institute", "Foundation", "Academy", "Society", "Laboratory", "College", "Museum", "Trust",
             "Conservatory", "Centre")
# the longer twin of "{stem} {kind}": "Harlow Institute" / "Harlow Institute of Art"
TWIN_SUFFIXES = ("of Art", "of Technology", "for Science", "International", "North", "of Music", "for Research",
                 "of Design", "Foundation", "Group")
CORRELATED_PROPERTIES = ("founder", "chief executive", "location", "founding year", "members", "industry", "product")
INDUSTRIES = ("education", "research", "publishing", "the arts", "engineering", "heritage", "medicine", "music")
PRODUCTS = ("training courses", "research reports", "exhibitions", "scholarships", "field surveys", "concert series",
            "design kits", "archive tours")
CORRELATED_TEMPLATES = {
    "founder": ["Who founded {n}?", "Who is the founder of {n}?", "By whom was {n} founded?"],
    "chief executive": ["Who is the chief executive of {n}?", "Who runs {n} as chief executive?",
                        "Who leads {n}?"],
    "location": ["Where is {n} located?", "In which city is {n}?", "Where is {n} based?"],
    "founding year": ["In what year was {n} founded?", "When was {n} founded?", "What year was {n} established?"],
    "members": ["How many members does {n} have?", "What is the membership of {n}?"],
    "industry": ["What industry is {n} in?", "In which field does {n} work?"],
    "product": ["What does {n} offer?", "What product does {n} provide?"],
}


def _validation_generator(seed: int):
    from kblam_integrations.training.synthetic import SyntheticKBGenerator

    return SyntheticKBGenerator(split="validation", seed=seed)


def _person(g) -> str:
    from kblam_integrations.training.synthetic.names import _person_name

    return _person_name(g)


def _write(path: str | os.PathLike, data: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def _correlated_entities(rng: random.Random, g, n_stems: int, pair_share: float) -> list[tuple[str, str | None]]:
    """``(name, partner name or None)`` for every entity; pairs share a stem and kind."""
    stems: list[str] = []
    seen: set[str] = set()
    while len(stems) < n_stems:
        s = g._coined(4, 9)
        if s.lower() not in seen:
            seen.add(s.lower())
            stems.append(s)
    out = []
    for s in stems:
        base = f"{s} {rng.choice(ORG_KINDS)}"
        if rng.random() < pair_share:
            twin = f"{base} {rng.choice(TWIN_SUFFIXES)}"
            out += [(base, twin), (twin, base)]
        else:
            out.append((base, None))
    return out


def correlated_kb(n_stems: int = 100, n_questions: int = 300, *, pair_share: float = 0.7,
                  unanswerable_share: float = 0.2, seed: int = 19) -> dict[str, Any]:
    """The correlated KB and its questions (see the module docstring)."""
    rng = random.Random(seed)
    g = _validation_generator(seed)
    entities = _correlated_entities(rng, g, n_stems, pair_share)
    founders = [_person(g) for _ in range(max(8, len(entities) // 5))]
    executives = founders[len(founders) // 2:] + [_person(g) for _ in range(max(8, len(entities) // 6))]
    cities = sorted({g._coined(5, 9) for _ in range(14)})
    triples: list[dict[str, str]] = []
    props_of: dict[str, list[str]] = {}
    absent_of: dict[str, str] = {}
    for name, _ in entities:
        dropped = rng.choice(CORRELATED_PROPERTIES)
        absent_of[name] = dropped
        values = {"founder": rng.choice(founders), "chief executive": rng.choice(executives),
                  "location": rng.choice(cities), "founding year": str(rng.randint(1990, 1999)),
                  "members": f"{rng.randint(120, 990):,}", "industry": rng.choice(INDUSTRIES),
                  "product": rng.choice(PRODUCTS)}
        props_of[name] = [p for p in CORRELATED_PROPERTIES if p != dropped]
        triples += [{"name": name, "property": p, "value": values[p]} for p in props_of[name]]
    value = {(t["name"], t["property"]): t["value"] for t in triples}

    def ask(name: str, prop: str, tag: str) -> dict[str, Any]:
        q = rng.choice(CORRELATED_TEMPLATES[prop]).format(n=name)
        return {"q": q, "name": name, "property": prop, "answer": value.get((name, prop)), "tag": tag}

    # blocks of questions; a block's questions stay adjacent (evaluate() groups by order)
    blocks: list[list[dict]] = []
    done: set[str] = set()
    for name, partner in entities:
        if name in done:
            continue
        done |= {name, partner} if partner else {name}
        members = [name, partner] if partner else [name]
        block = []
        tag = "near_duplicate" if partner else "shared_entity"
        shared = [p for p in CORRELATED_PROPERTIES if all(p in props_of[m] for m in members)]
        # founding year (ten close values) is asked twice as often as any other property
        weights = [2.0 if p == "founding year" else 1.0 for p in shared]
        for p in rng.choices(shared, weights=weights, k=1):
            block += [ask(m, p, "similar_values" if p == "founding year" and not partner else tag) for m in members]
        blocks.append(block)
    rng.shuffle(blocks)
    n_unans = round(n_questions * unanswerable_share)
    n_ans = n_questions - n_unans
    # cut at a block boundary so a pair is never split across the cap
    kept_blocks, count = [], 0
    for b in blocks:
        if count + len(b) > n_ans:
            break
        kept_blocks.append(b)
        count += len(b)
    # more answerable questions (a second property) until the target is met
    extra_pool = [(n, p) for n, _ in entities for p in props_of[n]]
    rng.shuffle(extra_pool)
    asked = {(q["name"], q["property"]) for b in kept_blocks for q in b}
    for b in kept_blocks:
        if count >= n_ans:
            break
        members = sorted({q["name"] for q in b})
        shared = [p for p in CORRELATED_PROPERTIES
                  if all(p in props_of[m] and (m, p) not in asked for m in members)]
        if not shared or count + len(members) > n_ans:
            continue
        p = rng.choice(shared)
        tag = b[0]["tag"] if b[0]["tag"] != "similar_values" else "shared_entity"
        tag = "similar_values" if p == "founding year" and len(members) == 1 else tag
        b += [ask(m, p, tag) for m in members]
        asked |= {(m, p) for m in members}
        count += len(members)
    # unanswerable: a property the named entity lacks; a twin whose partner has it comes first
    candidates = []
    for name, partner in entities:
        p = absent_of[name]
        strong = partner is not None and p in props_of[partner]
        candidates.append((0 if strong else 1, rng.random(), name, partner, p))
    candidates.sort()
    unanswerable = []
    for _, _, name, partner, p in candidates[:n_unans]:
        q = ask(name, p, "absent_property" if partner is None else "absent_twin_has_it")
        unanswerable.append(q)
    # interleave: insert each unanswerable question next to its entity's block, else at random
    where = {q["name"]: i for i, b in enumerate(kept_blocks) for q in b}
    tail = []
    for q in unanswerable:
        key = q["name"] if q["name"] in where else next((p for n, p in entities if n == q["name"] and p), None)
        if key in where:
            kept_blocks[where[key]].append(q)
        else:
            tail.append(q)
    for q in tail:
        kept_blocks.insert(rng.randrange(len(kept_blocks) + 1), [q])
    questions = [q for b in kept_blocks for q in b]
    return {
        "meta": {"generator": "benchmarks/robustness_data.py:correlated_kb",
                 "args": {"n_stems": n_stems, "n_questions": n_questions, "pair_share": pair_share,
                          "unanswerable_share": unanswerable_share, "seed": seed},
                 "near_duplicate_pairs": [[a, b] for a, b in entities if b and len(a) < len(b)]},
        "triples": triples,
        "questions": questions,
    }


# ------------------------------------------------------------------------ independent KB
def independent_kb(path: str | os.PathLike, n_triples: int, n_questions: int = 300, seed: int = 1919) -> dict:
    """The project's synthetic eval file (validation split) with at least ``n_triples`` triples."""
    from kblam_integrations.training.synthetic import write_eval_file

    n_entities = max(1, n_triples * 2 // 7)  # 2-5 properties per entity: 3.5 on average
    while True:
        write_eval_file(path, n_entities, n_questions, "validation", seed=seed)
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if len(data["triples"]) >= n_triples:
            break
        n_entities += max(1, (n_triples - len(data["triples"])) // 3)
    data["meta"] = {"generator": "kblam_integrations.training.synthetic.write_eval_file",
                    "args": {"n_entities": n_entities, "n_questions": n_questions, "split": "validation",
                             "seed": seed}}
    _write(path, data)
    return data


# ------------------------------------------------------------------- product catalogue
BRANDS = ("Norvik", "Quellor", "Askel", "Brondt", "Vireo", "Tamsin", "Orsk", "Lumaq", "Feldra", "Cobrik",
          "Hestia", "Marlo", "Zennor", "Pyxal", "Ostra", "Kerrin", "Dovale", "Sablo")
# category -> (model lines, properties it has)
CATEGORIES = {
    "wireless earbuds": (("Pulse", "Echo", "Drift", "Halo"), "battery"),
    "over-ear headphones": (("Studio", "Nomad", "Quiet"), "battery"),
    "bluetooth speaker": (("Boom", "Cove", "Ridge"), "battery"),
    "smartwatch": (("Stride", "Orbit", "Tempo"), "battery"),
    "e-reader": (("Folio", "Page"), "battery"),
    "cordless drill": (("Torque", "Grip"), "battery"),
    "electric kettle": (("Brew", "Steam"), "corded"),
    "blender": (("Vortex", "Blend"), "corded"),
    "toaster": (("Crisp", "Toast"), "corded"),
    "coffee grinder": (("Grind", "Mill"), "corded"),
}
CATALOGUE_PROPERTIES = {
    "battery": ("category", "retail price", "weight", "battery life", "release year", "SKU", "warranty"),
    "corded": ("category", "retail price", "weight", "power rating", "release year", "SKU", "warranty"),
}
CATALOGUE_TEMPLATES = {
    "category": ["What kind of product is the {n}?", "Which product category does the {n} belong to?"],
    "retail price": ["How much does the {n} retail for?", "What's the sticker price of the {n}?",
                     "How much would I pay for the {n}?"],
    "weight": ["What does the {n} weigh?", "How heavy is the {n}?", "What's the weight of the {n}?"],
    "battery life": ["How long does the {n}'s battery last on a charge?", "How many hours of battery does the {n} get?",
                     "What's the rated battery life of the {n}?"],
    "power rating": ["How many watts does the {n} draw?", "What's the power rating of the {n}?"],
    "release year": ["Which year did the {n} come out?", "When was the {n} released?",
                     "What year did the {n} hit the shelves?"],
    "SKU": ["What's the SKU for the {n}?", "Which SKU code is the {n} listed under?", "Give me the {n}'s SKU."],
    "warranty": ["How long is the warranty on the {n}?", "What warranty comes with the {n}?"],
}
CATALOGUE_ANSWERABLE_PROPS = ("retail price", "weight", "battery life", "power rating", "release year", "SKU",
                              "warranty", "category")


def _catalogue_value(rng: random.Random, prop: str, category: str, sku_prefix: str) -> str:
    heavy = category in ("electric kettle", "blender", "toaster", "coffee grinder", "cordless drill", "bluetooth speaker")
    if prop == "category":
        return category
    if prop == "retail price":
        return f"${rng.randint(19, 449)}.{rng.choice(('00', '49', '95', '99'))}"
    if prop == "weight":
        return f"{rng.randint(600, 2900) if heavy else rng.randint(28, 420)} g"
    if prop == "battery life":
        return f"{rng.randint(4, 60)} hours"
    if prop == "power rating":
        return f"{rng.choice(range(300, 2401, 50))} W"
    if prop == "release year":
        return str(rng.randint(2014, 2024))
    if prop == "SKU":
        return f"{sku_prefix}-{rng.randint(10000, 99999)}-{rng.choice('ABCDEFGHJKLMNPRSTUVWXYZ')}"
    if prop == "warranty":
        return f"{rng.choice((6, 12, 18, 24, 36))} months"
    raise ValueError(prop)


def product_catalogue(n_products: int = 180, n_questions: int = 300, *, unanswerable_share: float = 0.2,
                      seed: int = 23) -> dict[str, Any]:
    """The product catalogue (see the module docstring)."""
    rng = random.Random(seed)
    products: list[tuple[str, str, str]] = []  # (name, category, kind)
    names: set[str] = set()
    while len(products) < n_products:
        category = rng.choice(sorted(CATEGORIES))
        lines, kind = CATEGORIES[category]
        brand = rng.choice(BRANDS)
        model = rng.choice((str(rng.randint(2, 9)), f"{rng.choice('XSQRT')}{rng.randint(1, 99)}",
                            f"{rng.randint(100, 990)}"))
        name = f"{brand} {rng.choice(lines)} {model}"
        if name in names:
            continue
        names.add(name)
        products.append((name, category, kind))
    triples: list[dict[str, str]] = []
    props_of: dict[str, list[str]] = {}
    missing_of: dict[str, list[str]] = {}
    for name, category, kind in products:
        props = list(CATALOGUE_PROPERTIES[kind])
        if rng.random() < 0.3:  # some listings have no warranty entry
            props.remove("warranty")
        props_of[name] = props
        other = "power rating" if kind == "battery" else "battery life"
        missing_of[name] = [other] + (["warranty"] if "warranty" not in props else [])
        prefix = "".join(w[0] for w in name.split()[:2]).upper()
        for p in props:
            triples.append({"name": name, "property": p, "value": _catalogue_value(rng, p, category, prefix)})
    value = {(t["name"], t["property"]): t["value"] for t in triples}
    n_unans = round(n_questions * unanswerable_share)
    n_ans = n_questions - n_unans
    pool = [(n, p) for n, _, _ in products for p in props_of[n] if p != "category" or rng.random() < 0.3]
    rng.shuffle(pool)
    questions = []
    for n, p in pool[:n_ans]:
        questions.append({"q": rng.choice(CATALOGUE_TEMPLATES[p]).format(n=n), "name": n, "property": p,
                          "answer": value[(n, p)], "tag": "catalogue"})
    unans = [(n, p) for n, _, _ in products for p in missing_of[n]]
    rng.shuffle(unans)
    for n, p in unans[:n_unans]:
        q = {"q": rng.choice(CATALOGUE_TEMPLATES[p]).format(n=n), "name": n, "property": p, "answer": None,
             "tag": "absent_property"}
        questions.insert(rng.randrange(len(questions) + 1), q)
    return {
        "meta": {"generator": "benchmarks/robustness_data.py:product_catalogue",
                 "args": {"n_products": n_products, "n_questions": n_questions,
                          "unanswerable_share": unanswerable_share, "seed": seed}},
        "triples": triples,
        "questions": questions,
    }


def write_all(data_dir: str | os.PathLike = DATA) -> dict[str, Path]:
    """(Re)write the three committed files; returns their paths."""
    data_dir = Path(data_dir)
    corr = correlated_kb()
    paths = {"correlated": _write(data_dir / CORRELATED_FILE.name, corr),
             "catalogue": _write(data_dir / CATALOGUE_FILE.name, product_catalogue())}
    independent_kb(data_dir / INDEPENDENT_FILE.name, n_triples=len(corr["triples"]),
                   n_questions=len(corr["questions"]))
    paths["independent"] = data_dir / INDEPENDENT_FILE.name
    return paths


if __name__ == "__main__":
    for key, p in write_all().items():
        d = json.loads(p.read_text(encoding="utf-8"))
        n_ans = sum(q["answer"] is not None for q in d["questions"])
        print(f"{key}: {p.relative_to(ROOT)}: {len(d['triples'])} triples, {len(d['questions'])} questions "
              f"({n_ans} answerable)")
