"""Robustness of KBLaM retrieval and answers: correlated triples and out-of-domain KBs (issue 19).

Usage::

    # every row in one run (one run id); docs/benchmarks/robustness.md lists the five
    # shorter runs the committed rows come from and merges them with --report-only --also
    .venv/bin/python benchmarks/robustness.py --threads 1 --max-questions 100
    # retrieval only, quick look
    .venv/bin/python benchmarks/robustness.py --no-generate --datasets correlated independent --out /tmp/r.json
    # regenerate the evaluation files first (deterministic; the committed ones are these)
    .venv/bin/python benchmarks/robustness_data.py

Datasets (evaluation files in ``kblam eval`` format, see ``benchmarks/robustness_data.py``):

* ``correlated``: ``tests/data/robustness_correlated.json``: 1,020 triples about 170
  organisations with six properties each, 70 near-duplicate name pairs ("X Institute" /
  "X Institute of Art"), founders / chief executives / cities from small shared pools,
  ``founding year`` in 1990-1999; 240 answerable + 60 unanswerable questions (a property the
  entity lacks, mostly one its near-duplicate twin has). Questions about both twins of a
  pair are adjacent, so both twins' triples are in the same evaluated KB.
* ``independent``: ``tests/data/robustness_independent.json``: the project's synthetic
  generator (validation split) at the same size (1,021 triples, 240 + 60 questions).
* ``in-domain``: ``tests/data/synthetic_heldout_777.json`` (the held-out file of
  ``docs/benchmarks/eval.md``: 547 triples, 240 + 60 questions).
* ``catalogue``: ``tests/data/robustness_catalogue.json``: an out-of-domain product
  catalogue (1,205 triples: prices, grams, battery hours, watts, release years, SKU codes,
  warranties; catalogue-style questions), 240 + 60 questions.
* ``real-text``: the KB spaCy extracts from ``tests/data/real_corpus.txt`` with the 24
  hand-written questions of ``real_corpus_questions.json`` (18 answerable: small sample).

Every KB is built by :func:`kblam_integrations.training.evaluate.evaluate` (the code behind
``kblam eval``): the asked triples, other triples of the file, then validation-split
synthetic distractors, exactly N triples. The four generated files hold >= 1,000 triples,
so their KBs of 1,000 are their own triples (no synthetic padding); the real-text KB is
padded with synthetic distractors.

Rows per dataset and KB size (``--sizes``, default 100 1000):

* ``kblam`` retrieval (``generate=False``): top-1 / top-5 of KB attention over the whole KB,
  refusal precision / recall from the model's refusal rule;
* ``rag-faiss-key`` retrieval: the cosine baseline
  (:class:`kblam_integrations.baselines.rag.FaissRAG` over the triples' key texts, the same
  MiniLM encoder) ranking the same KBs; refusal threshold calibrated as in
  ``benchmarks/compare.py`` (max refusal F1 on ``synthetic_dev_calibration.json`` at KB 100);
* at ``--generate-sizes`` (default 100), on the first ``--max-questions`` answerable
  questions of each file and the unanswerable ones among them: answers of
  ``kblam-grounded``, ``rag-faiss-key-k1`` (same answer step) and ``icl`` (every triple
  in the prompt; datasets in ``--icl-datasets``), through ``benchmarks/compare.py``'s
  method families, so the answers are scored exactly as in the comparison benchmark.

95% Wilson intervals on every proportion; one ``run_id`` for every row; the JSON and
tables (``docs/benchmarks/robustness_tables.md``, included by ``robustness.md``) are
rewritten after every row (a partial run leaves its numbers).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402
import compare as CMP  # noqa: E402

DATA = C.ROOT / "tests" / "data"
DATASETS = {  # run in this order
    "correlated": DATA / "robustness_correlated.json",
    "independent": DATA / "robustness_independent.json",
    "catalogue": DATA / "robustness_catalogue.json",
    "real-text": None,  # compare.real_case(): spaCy extraction of real_corpus.txt
    "in-domain": DATA / "synthetic_heldout_777.json",
}
DEFAULT_OUT = C.DOCS_DIR / "robustness.json"


def load_dataset(name: str) -> tuple[list, list[dict], dict]:
    from kblam_integrations.training.evaluate import load_eval_file

    if name == "real-text":
        kb, questions, missed = CMP.real_case()
        return kb, questions, {"unresolved_targets": missed, "source": "tests/data/real_corpus_questions.json"}
    path = DATASETS[name]
    triples, questions = load_eval_file(path)
    return triples, questions, {"source": str(path.relative_to(C.ROOT))}


def cap_questions(questions: list[dict], max_answerable: int | None) -> list[dict]:
    """The first ``max_answerable`` answerable questions and the unanswerable ones among them."""
    if not max_answerable:
        return questions
    out, n = [], 0
    for q in questions:
        if q.get("answer") is not None:
            if n >= max_answerable:
                break
            n += 1
        out.append(q)
    return out


def _breakdown(questions: list[dict], records: list[dict]) -> dict[str, dict]:
    """Top-1 per question tag and for the ``founding year`` property (answerable questions)."""
    groups: dict[str, list[int]] = {}
    for q, r in zip(questions, records):
        if "rank" not in r:
            continue
        keys = [f"tag:{q['tag']}"] if q.get("tag") else []
        if q["property"] == "founding year":
            keys.append("property:founding year")
        for k in keys:
            groups.setdefault(k, []).append(r["rank"])
    return {k: {"n": len(v), "top1": sum(x == 0 for x in v) / len(v), "top1_ci": CMP.wilson(sum(x == 0 for x in v), len(v)),
                "top5": sum(x < 5 for x in v) / len(v)} for k, v in sorted(groups.items())}


def retrieval_row(ranker, name: str, questions: list[dict], triples: list, size: int, seed: int) -> dict:
    from kblam_integrations.training.evaluate import evaluate

    metrics, records = evaluate(ranker, triples, questions, kb_size=size, seed=seed, generate=False,
                                return_records=True)
    ranks = [r["rank"] for r in records if "rank" in r]
    n = len(ranks)
    k1, k5 = sum(r == 0 for r in ranks), sum(r < 5 for r in ranks)
    return {"answerable": n, "unanswerable": metrics["unanswerable"],
            "top1": k1 / n if n else None, "top1_ci": CMP.wilson(k1, n),
            "top5": k5 / n if n else None, "top5_ci": CMP.wilson(k5, n),
            "refusal_precision": metrics["refusal_precision"], "refusal_recall": metrics["refusal_recall"],
            "breakdown": _breakdown(questions, records)}


# ------------------------------------------------------------------------------ report
def _pct(v: float | None, ci: list[float] | None = None) -> str:
    if v is None:
        return "–"
    return f"{v:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else f"{v:.2f}"


def markdown(result: dict) -> str:
    rows = result["rows"]
    get = lambda ds, size, method: next((r for r in rows if r["dataset"] == ds and r["kb_size"] == size  # noqa: E731
                                         and r["method"] == method), None)
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    sizes = sorted({r["kb_size"] for r in rows})
    small = lambda r: " *" if r and (r.get("answerable") or 0) < CMP.MIN_ANSWERABLE else ""  # noqa: E731
    runs = "; ".join(f"`{m['run_id']}` ({m['started']}, {m['threads']} thread(s), commit "
                     f"`{(m.get('commit') or '')[:10]}`{', with uncommitted changes' if m.get('dirty') else ''})"
                     for m in [result["meta"], *result["meta"].get("other_runs", [])])
    out = [f"Run(s) {runs}; each row names its run in the JSON (`run_id`). 95% Wilson intervals in brackets; "
           "`*`: fewer than 100 answerable questions.", "",
           "**Retrieval** (whole KB ranked; answerable questions):", "",
           "| dataset | KB size | answerable + not | KBLaM top-1 | KBLaM top-5 | cosine (faiss) top-1 | cosine top-5 | "
           "KBLaM refusal P / R | cosine refusal P / R |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for ds in datasets:
        for size in sizes:
            k, r = get(ds, size, "kblam"), get(ds, size, "rag-faiss-key")
            if not k and not r:
                continue
            base = k or r
            out.append(f"| {ds} | {size} | {base['answerable']} + {base['unanswerable']}{small(base)} | "
                       f"{_pct(k and k['top1'], k and k['top1_ci'])} | {_pct(k and k['top5'])} | "
                       f"{_pct(r and r['top1'], r and r['top1_ci'])} | {_pct(r and r['top5'])} |"
                       + "".join(f" {_pct(x['refusal_precision'])} / {_pct(x['refusal_recall'])} |" if x else " – |"
                                 for x in (k, r)))
    gen = [r for r in rows if r.get("generate")]
    if gen:
        out += ["", "**Answers** (first answerable questions of each file and the unanswerable ones among them; "
                "answer accuracy over the answerable ones):", "",
                "| dataset | KB size | n | KBLaM grounded | grounded: asked fact used | cosine RAG k=1 | "
                "ICL (whole KB in prompt) | grounded refusal P / R | RAG refusal P / R |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for ds in datasets:
            for size in sizes:
                g, r, i = (get(ds, size, m) for m in ("kblam-grounded", "rag-faiss-key-k1", "icl"))
                if not (g or r or i):
                    continue
                base = g or r or i
                icl = ("does not fit" if i and not i.get("fits", True) else
                       _pct(i and i.get("answer_accuracy"), i and i.get("answer_accuracy_ci")))
                ns = "/".join(str(x.get("answerable")) for x in (g, r, i) if x)
                ns = ns if len(set(ns.split("/"))) > 1 else str(base.get("answerable"))
                out.append(f"| {ds} | {size} | {ns}{small(base)} | "
                           f"{_pct(g and g.get('answer_accuracy'), g and g.get('answer_accuracy_ci'))} | "
                           f"{_pct(g and g.get('top1_used'))} | "
                           f"{_pct(r and r.get('answer_accuracy'), r and r.get('answer_accuracy_ci'))} | {icl} |"
                           + "".join(f" {_pct(x.get('refusal_precision'))} / {_pct(x.get('refusal_recall'))} |"
                                     if x else " – |" for x in (g, r)))
    corr = [r for r in rows if r["dataset"] == "correlated" and r.get("breakdown")]
    if corr:
        out += ["", "**Correlated KB, by question kind** (top-1 of the whole-KB ranking):", "",
                "| KB size | ranker | kind | n | top-1 | top-5 |", "|---:|---|---|---:|---:|---:|"]
        for r in corr:
            for kind, b in r["breakdown"].items():
                out.append(f"| {r['kb_size']} | {r['method']} | {kind} | {b['n']} | {_pct(b['top1'], b['top1_ci'])} | "
                           f"{_pct(b['top5'])} |")
    return "\n".join(out) + "\n"


def tables_path(out: Path) -> Path:
    """Where the generated tables go: ``robustness_tables.md`` next to ``robustness.json``."""
    return out.with_name(out.stem + "_tables.md")


def save(result: dict, out: Path) -> None:
    C.write_json(out, result)
    tables_path(out).write_text(markdown(result), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog="See the module docstring.",
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--generate-sizes", type=int, nargs="*", default=[100], help="KB sizes with generated answers")
    ap.add_argument("--max-questions", type=int, default=100,
                    help="first N answerable questions per file (+ the unanswerable ones among them); 0: all")
    ap.add_argument("--icl-datasets", nargs="*", default=["correlated", "independent"],
                    help="datasets with an ICL answer row (the slow anchor)")
    ap.add_argument("--icl-questions", type=int, default=100,
                    help="ICL: first N answerable questions per file (+ the unanswerable ones among them)")
    ap.add_argument("--rag-min-cosine", type=float, default=None,
                    help="skip the RAG refusal calibration and use this threshold")
    ap.add_argument("--no-generate", action="store_true", help="retrieval rows only")
    ap.add_argument("--answer-methods", nargs="+", choices=["kblam-grounded", "rag-faiss-key-k1", "icl"],
                    default=["kblam-grounded", "rag-faiss-key-k1", "icl"], help="answer rows, run in this order")
    ap.add_argument("--skip-retrieval", action="store_true", help="answer rows only")
    ap.add_argument("--also", type=Path, nargs="*", default=[],
                    help="--report-only: result files of other runs, merged into --out (rows and meta.other_runs)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--report-only", action="store_true", help="rebuild the tables from --out")
    args = ap.parse_args(argv)
    if args.report_only:
        result = json.loads(args.out.read_text())
        if args.also:  # merge other runs' rows into --out (once per run id)
            runs = {r["run_id"] for r in result["rows"]}
            result["meta"].setdefault("other_runs", [])
            for o in (json.loads(Path(p).read_text()) for p in args.also):
                if o["meta"]["run_id"] not in runs:
                    result["rows"] += o["rows"]
                    result["meta"]["other_runs"].append(o["meta"])
                    runs.add(o["meta"]["run_id"])
            C.write_json(args.out, result)
        tables_path(args.out).write_text(markdown(result), encoding="utf-8")
        return 0

    threads = CMP.set_threads(args.threads)
    import torch

    from kblam_integrations.baselines.rag import RAGEvalModel

    model, trained = C.load_model(args.weights)
    commit = CMP.git_commit()
    result: dict[str, Any] = {"meta": {"run_id": uuid.uuid4().hex[:12], "started": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                                                  time.gmtime()),
                                       "threads": threads, "trained_weights": trained, "argv": sys.argv[1:],
                                       "max_questions": args.max_questions, **commit, "machine": C.machine_info()},
                              "rows": []}
    if args.rag_min_cosine is None:
        t_cal = time.perf_counter()
        thresholds = CMP.calibrate(model, {"key"})
        CMP.progress(f"RAG threshold {thresholds['key']['min_cosine']:.3f} ({time.perf_counter() - t_cal:.0f} s)")
    else:
        thresholds = {"key": {"min_cosine": args.rag_min_cosine, "given": True}}
    result["meta"]["rag_calibration"] = thresholds

    def add(row: dict) -> None:
        row.update(run_id=result["meta"]["run_id"])
        result["rows"].append(row)
        save(result, args.out)
        CMP.progress(f"{row['dataset']} KB {row['kb_size']} {row['method']}: "
                     + ", ".join(f"{k} {row[k]:.3f}" for k in ("top1", "top5", "answer_accuracy")
                                 if isinstance(row.get(k), float)) + f" ({row['seconds']:.0f} s)")

    data = {ds: load_dataset(ds) for ds in args.datasets}
    rag_ranker = RAGEvalModel(model, index_text="key", min_cosine=thresholds["key"]["min_cosine"])
    # phase 1: retrieval rows (cheap) for every dataset and size; phase 2: answers, ICL last
    for size in [] if args.skip_retrieval else sorted(args.sizes):
        for ds, (triples, questions, info) in data.items():
            capped = cap_questions(questions, args.max_questions)
            for method, ranker in (("kblam", model), ("rag-faiss-key", rag_ranker)):
                t0 = time.perf_counter()
                with torch.no_grad():
                    row = retrieval_row(ranker, ds, capped, triples, size, args.seed)
                add({"dataset": ds, "kb_size": size, "method": method, "generate": False, "file_triples": len(triples),
                     "questions": len(capped), **info, **row, "seconds": time.perf_counter() - t0})
    if not args.no_generate:
        family = {"kblam-grounded": "kblam", "rag-faiss-key-k1": "rag-key", "icl": "icl"}
        for method in args.answer_methods:
            fam, methods = family[method], [method]
            for size in sorted(args.generate_sizes):
                for ds, (triples, questions, info) in data.items():
                    if fam == "icl" and ds not in args.icl_datasets:
                        continue
                    capped = cap_questions(questions, args.icl_questions if fam == "icl" else args.max_questions)
                    t0 = time.perf_counter()
                    rows = CMP.run_family(model, fam, methods, [(ds, triples, capped)], size,
                                          max_new_tokens=args.max_new_tokens, seed=args.seed, thresholds=thresholds,
                                          icl_questions=len(capped))
                    for r in rows:
                        r.pop("correct_bits", None)
                        add({"dataset": ds, "kb_size": size, "generate": True, "file_triples": len(triples),
                             "questions": len(capped), **info, **r, "seconds": time.perf_counter() - t0})
    result["meta"]["finished"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    save(result, args.out)
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
