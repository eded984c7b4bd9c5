"""Evaluate a KBLaM model: attention retrieval, answers and refusals (``kblam eval``).

Input file: ``{"triples": [{"name","property","value"}...], "questions": [{"q","name",
"property","answer"}...]}`` with ``answer`` null when the KB cannot answer. Each question
is asked against a KB of exactly ``kb_size`` triples: the triples its group of questions
asks about, then other triples of the file, then synthetic distractors (validation split,
names never trained on).

Metrics:
* ``top1``/``top5``: the asked triple (same name and property) is the best / among the five
  best-attended triples (answerable questions only).
* ``answer_accuracy`` (answerable questions only): the answer is correct when the
  normalised value (lowercase, punctuation dropped, whitespace collapsed) is contained in
  the normalised answer, or, for values of at least ``ROUGE_MIN_WORDS`` words (phrases and
  sentences, which a model may rephrase), when the ROUGE-L recall of the value in the
  answer (``rouge-score``, no stemming) is at least ``ROUGE_L_RECALL``. Names, numbers and
  dates need the exact text.
* ``refusal_precision``/``refusal_recall``: a refusal is predicted when the answer contains a
  refusal phrase (pure mode), or when the model's refusal rule fires (grounded mode, which
  then answers with the refusal sentence; retrieval-only runs use the same rule).
"""

from __future__ import annotations

import json
import random
import re
import unicodedata
from pathlib import Path
from typing import Any

import torch

from ..errors import KBFormatError
from ..kb.triple import Triple

REFUSAL_MARKERS = ("cannot find", "can't find", "not in the knowledge base", "i'm sorry", "i don't know")
ROUGE_MIN_WORDS = 4
ROUGE_L_RECALL = 0.5


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"[^\w\s]", " ", text)
    return " ".join(text.split())


def rouge_l_recall(expected: str, answer: str) -> float:
    """ROUGE-L recall of ``expected`` in ``answer`` (the share of its words found in order)."""
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"]).score(expected, answer)["rougeL"].recall


def answer_is_correct(expected: str, answer: str) -> bool:
    """The module docstring's rule: exact normalised containment, or ROUGE-L for long values."""
    value, text = normalise(expected), normalise(answer)
    if value in text:
        return True
    return len(value.split()) >= ROUGE_MIN_WORDS and rouge_l_recall(expected, answer) >= ROUGE_L_RECALL


def is_degenerate(answer: str, *, min_distinct: float = 0.6, max_run: int = 3) -> bool:
    """Whether an answer loops: a word repeated more than ``max_run`` times in a row
    ("non-of-of-of-of"), or, for answers of 8+ words, a share of distinct word bigrams
    (distinct-2) below ``min_distinct``."""
    words = re.findall(r"\w+", answer.lower())
    run = 1
    for a, b in zip(words, words[1:]):
        run = run + 1 if a == b else 1
        if run > max_run:
            return True
    if len(words) < 8:
        return False
    bigrams = list(zip(words, words[1:]))
    return len(set(bigrams)) / len(bigrams) < min_distinct


def is_refusal(answer: str) -> bool:
    low = answer.lower()
    return any(m in low for m in REFUSAL_MARKERS)


def read_kb_json(path: str | Path, items: str, what: str) -> tuple[list[Triple], list[Any]]:
    """``(triples, data[items])`` of a ``{"triples": [...], items: [...]}`` JSON file (typed errors)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise KBFormatError(f"{what} file not found", path=path) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise KBFormatError(f"cannot read {what} file: {exc}", path=path) from None
    if not isinstance(data, dict) or not isinstance(data.get("triples"), list) or not isinstance(data.get(items), list):
        raise KBFormatError(f'expected an object with "triples" and "{items}" lists', path=path)
    return [Triple.from_dict(r, index=i) for i, r in enumerate(data["triples"])], data[items]


def load_eval_file(path: str | Path) -> tuple[list[Triple], list[dict[str, Any]]]:
    """Read and validate an evaluation file (typed errors name the record and field)."""
    path = Path(path)
    triples, records = read_kb_json(path, "questions", "evaluation")
    questions = []
    for i, q in enumerate(records):
        if not isinstance(q, dict):
            raise KBFormatError("a question must be an object", path=path, record=f"question #{i}")
        for f in ("q", "name", "property"):
            if not isinstance(q.get(f), str) or not q[f].strip():
                raise KBFormatError("missing or empty string", path=path, record=f"question #{i}", field=f)
        if q.get("answer") is not None and not isinstance(q["answer"], str):
            raise KBFormatError("answer must be a string or null", path=path, record=f"question #{i}", field="answer")
        questions.append(q)
    return triples, questions


def _groups(questions, index, kb_size: int) -> list[list[int]]:
    """Split questions so that the triples each group asks about fit in half the KB."""
    per_group = max(1, kb_size // 2)
    groups, current, asked = [], [], set()
    for qi, q in enumerate(questions):
        t = index.get((q["name"], q["property"]))
        new = {t} if t is not None and t not in asked else set()
        if current and len(asked) + len(new) > per_group:
            groups.append(current)
            current, asked = [], set()
            new = {t} if t is not None else set()
        current.append(qi)
        asked |= new
    if current:
        groups.append(current)
    return groups


def evaluate(model, triples: list[Triple], questions: list[dict[str, Any]], *, kb_size: int, mode: str = "kblam",
             seed: int = 0, generate: bool = True, max_new_tokens: int = 32, progress: bool = False,
             return_records: bool = False) -> dict[str, Any] | tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run the evaluation; see the module docstring for the metrics.

    With ``return_records`` also returns one record per question (scores, answer, verdicts).
    """
    from tqdm.auto import tqdm

    from .synthetic import SyntheticKBGenerator

    rng = random.Random(seed)
    index = {(t.name, t.property): i for i, t in enumerate(triples)}
    absent = {(q["name"], q["property"]) for q in questions if q.get("answer") is None}
    names = {t.name for t in triples} | {q["name"] for q in questions}
    pool = SyntheticKBGenerator(split="validation", seed=seed + 7919).distractors(max(0, kb_size), exclude_names=names)
    pool = [t for t in pool if (t.name, t.property) not in absent]
    hits1 = hits5 = answerable = correct = 0
    tp = fp = fn = 0
    records = []
    groups = _groups(questions, index, kb_size)
    bar = tqdm(total=len(questions), disable=not progress, desc=f"eval kb={kb_size} {mode}")
    for group in groups:
        asked = {index[(questions[qi]["name"], questions[qi]["property"])] for qi in group
                 if (questions[qi]["name"], questions[qi]["property"]) in index and questions[qi].get("answer") is not None}
        others = [i for i in range(len(triples)) if i not in asked and (triples[i].name, triples[i].property) not in absent]
        rng.shuffle(others)
        kb = [triples[i] for i in asked] + [triples[i] for i in others[: max(0, kb_size - len(asked))]]
        if len(kb) < kb_size:
            kb += rng.sample(pool, min(len(pool), kb_size - len(kb)))
        rng.shuffle(kb)
        tokens = model.encode_kb(kb)
        qs = [questions[qi] for qi in group]
        scores, null, refusal_scores = model.retrieve_batch([q["q"] for q in qs], tokens, return_refusal_scores=True)
        for j, q in enumerate(qs):
            answerable_q = q.get("answer") is not None
            rec: dict[str, Any] = {"q": q["q"], "expected": q.get("answer"), "answerable": answerable_q,
                                   "best": float(scores[j].max()) if scores.shape[1] else 0.0, "null": float(null[j]),
                                   "refusal_score": float(refusal_scores[j])}
            order = torch.argsort(scores[j], descending=True).tolist()
            if answerable_q:
                answerable += 1
                target = next(i for i, t in enumerate(tokens.triples) if (t.name, t.property) == (q["name"], q["property"]))
                rank = order.index(target)
                hits1 += rank == 0
                hits5 += rank < 5
                rec["rank"] = rank
            if generate:
                res = model.generate(q["q"], kb=tokens, mode=mode, max_new_tokens=max_new_tokens)
                answer = res.text
                refused = is_refusal(answer)
            else:
                answer = None
                refused = float(refusal_scores[j]) > model.refusal_threshold
            rec.update(answer=answer, refused=refused)
            if answerable_q:
                ok = answer is not None and not refused and answer_is_correct(q["answer"], answer)
                correct += ok
                rec["correct"] = ok
                fp += refused
            else:
                tp += refused
                fn += not refused
            records.append(rec)
            bar.update(1)
    bar.close()
    n_unans = tp + fn
    metrics = {
        "kb_size": kb_size,
        "mode": mode,
        "questions": len(questions),
        "answerable": answerable,
        "unanswerable": n_unans,
        "top1": hits1 / answerable if answerable else None,
        "top5": hits5 / answerable if answerable else None,
        "answer_accuracy": (correct / answerable if answerable else None) if generate else None,
        "refusal_precision": tp / (tp + fp) if tp + fp else 0.0,
        "refusal_recall": tp / n_unans if n_unans else None,
        "examples": records[:20],
    }
    return (metrics, records) if return_records else metrics


def evaluate_file(model, path: str | Path, *, kb_size: int, mode: str = "kblam", seed: int = 0,
                  generate: bool = True, max_new_tokens: int = 32, progress: bool = True) -> dict[str, Any]:
    """``kblam eval``: load ``path`` and :func:`evaluate` it."""
    triples, questions = load_eval_file(path)
    return evaluate(model, triples, questions, kb_size=kb_size, mode=mode, seed=seed, generate=generate,
                    max_new_tokens=max_new_tokens, progress=progress)


def calibrate_refusal_ratio(model, path: str | Path, *, kb_size: int = 100, seed: int = 0) -> tuple[float, dict]:
    """Pick the refusal threshold maximising refusal F1 on ``path`` (use a *train-split* file).

    One retrieval pass; the threshold only moves the decision. With a refusal classifier it
    sets the classifier's probability threshold, else ``config.refusal_ratio``. Updates the
    model's config and returns ``(threshold, metrics)``.
    """
    triples, questions = load_eval_file(path)
    _, records = evaluate(model, triples, questions, kb_size=kb_size, mode="grounded", seed=seed, generate=False,
                          return_records=True)
    if model.config.refusal_classifier:
        candidates = [i / 20 for i in range(1, 19)] + [0.92, 0.94, 0.96, 0.97, 0.98, 0.985, 0.99, 0.995, 0.998]
    else:
        candidates = [0.1, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0]
    best = None
    for t in candidates:
        tp = sum(1 for r in records if not r["answerable"] and r["refusal_score"] > t)
        fp = sum(1 for r in records if r["answerable"] and r["refusal_score"] > t)
        fn = sum(1 for r in records if not r["answerable"] and not r["refusal_score"] > t)
        p = tp / (tp + fp) if tp + fp else 0.0
        rc = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * p * rc / (p + rc) if p + rc else 0.0
        if best is None or f1 > best[0]:
            best = (f1, t, {"refusal_precision": p, "refusal_recall": rc, "f1": f1})
    if model.config.refusal_classifier:
        model.config.refusal_classifier = {**model.config.refusal_classifier, "threshold": best[1]}
    else:
        model.config.refusal_ratio = best[1]
    return best[1], best[2]
