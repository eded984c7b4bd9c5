"""Precision / recall of :class:`~kblam_integrations.kb.extraction.TripleExtractor` on a labelled set.

Usage::

    .venv/bin/python benchmarks/extraction.py                       # tests/data/extraction_gold.jsonl
    .venv/bin/python benchmarks/extraction.py --gold other.jsonl --out /tmp/x.json

The gold file is JSON Lines, one example per line: ``{"text": ..., "triples": [{"name",
"property", "value"}, ...]}`` (``text`` may be a short passage; it is extracted as one
document, so pronouns resolve across its sentences).

Matching rule (a predicted triple matches a gold triple when *all three* fields match):

1. normalise both strings: Unicode NFKC, lowercase, drop thousands separators inside
   numbers (``1,642`` → ``1642``), turn every character that is not a letter, digit or
   space into a space, drop the articles *a*, *an*, *the*, collapse whitespace;
2. the fields match if the normalised strings are equal, **or** one is contained in the
   other on word boundaries (``"honshu"`` in ``"island of honshu"``), **or** their
   token-set ratio is ≥ 0.8 — the best ``difflib.SequenceMatcher`` ratio among
   ``(common tokens)`` vs ``(common + rest of A)`` vs ``(common + rest of B)``, tokens
   sorted, as in *fuzzywuzzy*'s ``token_set_ratio``;
3. predictions and gold triples of the same example are paired one-to-one (maximum
   bipartite matching), so a duplicate prediction cannot match the same gold triple twice.

precision = matched / predicted, recall = matched / gold, over the whole file
(micro-averaged). The JSON report also lists every false positive and false negative.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import time
import unicodedata
from difflib import SequenceMatcher
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_GOLD = ROOT / "tests" / "data" / "extraction_gold.jsonl"
DEFAULT_OUT = ROOT / "docs" / "benchmarks" / "extraction.json"
THRESHOLD = 0.8
FIELDS = ("name", "property", "value")
_ARTICLES = {"a", "an", "the"}


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"(?<=\d),(?=\d)", "", text)
    text = re.sub(r"[^\w\s]|_", " ", text)
    return " ".join(w for w in text.split() if w not in _ARTICLES)


def token_set_ratio(a: str, b: str) -> float:
    ta, tb = set(a.split()), set(b.split())
    common = " ".join(sorted(ta & tb))
    rest_a = " ".join(sorted(ta - tb))
    rest_b = " ".join(sorted(tb - ta))
    ca = f"{common} {rest_a}".strip()
    cb = f"{common} {rest_b}".strip()
    pairs = [(ca, cb)]
    if common:
        pairs += [(common, ca), (common, cb)]
    return max(SequenceMatcher(None, x, y).ratio() for x, y in pairs)


def field_match(pred: str, gold: str) -> bool:
    p, g = normalise(pred), normalise(gold)
    if not p or not g:
        return p == g
    if p == g:
        return True
    if f" {p} " in f" {g} " or f" {g} " in f" {p} ":
        return True
    return token_set_ratio(p, g) >= THRESHOLD


def triple_match(pred: dict, gold: dict) -> bool:
    return all(field_match(pred[f], gold[f]) for f in FIELDS)


def max_matching(preds: list[dict], golds: list[dict]) -> list[tuple[int, int]]:
    """Maximum bipartite matching (augmenting paths): pairs (pred index, gold index)."""
    edges = [[j for j, g in enumerate(golds) if triple_match(p, g)] for p in preds]
    owner: dict[int, int] = {}

    def augment(i: int, seen: set[int]) -> bool:
        for j in edges[i]:
            if j in seen:
                continue
            seen.add(j)
            if j not in owner or augment(owner[j], seen):
                owner[j] = i
                return True
        return False

    for i in range(len(preds)):
        augment(i, set())
    return sorted((i, j) for j, i in owner.items())


def evaluate(gold_path: Path, model: str | None = None) -> dict:
    from kblam_integrations.kb.extraction import TripleExtractor

    examples = [json.loads(line) for line in gold_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    extractor = TripleExtractor(model)
    t0 = time.perf_counter()
    extractor.nlp  # noqa: B018 - load before timing extraction
    load_s = time.perf_counter() - t0
    tp = n_pred = n_gold = 0
    false_pos, false_neg = [], []
    t0 = time.perf_counter()
    predictions = [
        [t.to_dict() for t in extractor.extract(ex["text"], doc_id=f"ex-{k}")] for k, ex in enumerate(examples)
    ]
    extract_s = time.perf_counter() - t0
    for k, (ex, preds) in enumerate(zip(examples, predictions)):
        golds = ex.get("triples", [])
        pairs = max_matching(preds, golds)
        tp += len(pairs)
        n_pred += len(preds)
        n_gold += len(golds)
        mp = {i for i, _ in pairs}
        mg = {j for _, j in pairs}
        for i, p in enumerate(preds):
            if i not in mp:
                false_pos.append({"example": k, "text": ex["text"], **{f: p[f] for f in FIELDS}})
        for j, g in enumerate(golds):
            if j not in mg:
                false_neg.append({"example": k, "text": ex["text"], **{f: g[f] for f in FIELDS}})
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    import spacy

    return {
        "gold": str(gold_path.relative_to(ROOT) if gold_path.is_relative_to(ROOT) else gold_path),
        "examples": len(examples),
        "gold_triples": n_gold,
        "predicted_triples": n_pred,
        "true_positives": tp,
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "matching": "NFKC+lowercase, drop articles/punctuation/thousands separators; per field: equal, "
                    "word-boundary containment, or token-set SequenceMatcher ratio >= 0.8; one-to-one matching",
        "spacy_model": "{}_{}-{}".format(extractor.nlp.meta.get("lang", "?"), extractor.nlp.meta.get("name", "?"),
                                          extractor.nlp.meta.get("version", "?")),
        "spacy_version": spacy.__version__,
        "python": platform.python_version(),
        "load_seconds": round(load_s, 3),
        "extract_seconds": round(extract_s, 3),
        "false_positives": false_pos,
        "false_negatives": false_neg,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gold", type=Path, default=DEFAULT_GOLD, help="labelled JSONL file")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON report")
    ap.add_argument("--model", default=None, help="spaCy pipeline (default: resolve_spacy_model())")
    ap.add_argument("--show-errors", action="store_true", help="print false positives / negatives")
    args = ap.parse_args(argv)
    report = evaluate(args.gold.resolve(), args.model)
    report = {"command": " ".join(["python", "benchmarks/extraction.py", *(argv if argv is not None else sys.argv[1:])]),
              **report}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if args.show_errors:
        for kind in ("false_positives", "false_negatives"):
            print(f"-- {kind}")
            for e in report[kind]:
                print(f"   [{e['example']}] ({e['name']}; {e['property']}; {e['value']})   <- {e['text']}")
    print(f"examples={report['examples']} gold={report['gold_triples']} predicted={report['predicted_triples']} "
          f"matched={report['true_positives']}")
    print(f"precision={report['precision']:.3f} recall={report['recall']:.3f} f1={report['f1']:.3f}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
