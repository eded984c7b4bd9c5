"""Evaluation files: a KB and single-triple questions about it, written as JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ...kb.atomic_files import atomic_write_text
from .generator import SyntheticKBGenerator, _check_int
from .schema import EVAL_MIX



def write_eval_file(path: str | os.PathLike, n_entities: int, n_questions: int, split: str = "validation",
                    seed: int = 0) -> None:
    """Write an evaluation set as JSON.

    Format: ``{"triples": [{"name", "property", "value"}], "questions": [{"q", "name",
    "property", "answer"}]}``. Only single-triple questions (simple and open ones) and
    unanswerable ones are written; ``answer`` is the asked triple's value, or ``null``
    for unanswerable questions (whose ``name``/``property`` are not in ``triples``).
    """
    _check_int(n_entities, "n_entities", minimum=1)
    _check_int(n_questions, "n_questions")
    gen = SyntheticKBGenerator(split=split, seed=seed)
    kb = gen.make_kb(n_entities)
    questions = gen.make_questions(kb, n_questions, mix=EVAL_MIX)
    records = []
    for ex in questions:
        name, prop = ex.asked[0]
        answer = ex.triples[0].value if ex.triples else None
        records.append({"q": ex.question, "name": name, "property": prop, "answer": answer})
    data = {
        "triples": [{"name": t.name, "property": t.property, "value": t.value} for t in kb],
        "questions": records,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
