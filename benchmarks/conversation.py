"""Conversations over a KB: follow-ups and two-fact questions, KBLaM vs RAG, one run.

Writes ``docs/benchmarks/conversation.json`` and ``conversation.md``. Reproduce with::

    # the committed run: 80 follow-up dialogues (60 answerable follow-ups, 20 about an
    # absent property) and 40 two-fact questions, ~25 min on one idle core
    .venv/bin/python benchmarks/conversation.py --threads 1 --max-follow-ups 80 --max-two-fact 40 \
        --methods kblam-grounded rag-last rag-condense kblam
    .venv/bin/python benchmarks/conversation.py --threads 1      # the whole file, ~2 h

Data: ``tests/data/dialogues_heldout_777.json`` (``write_dialogue_file(path, 250, 160, 100,
"validation", seed=777)``: 160 dialogues, 120 answerable follow-ups (pronoun, ellipsis,
switch back to an earlier entity), 40 follow-ups about a property the entity lacks (the
answer is a refusal), and 100 two-fact questions), each asked against a KB of
``--kb-size`` triples (the asked triples + others + validation-split distractors, built
by :func:`kblam_integrations.training.dialogues.evaluate_dialogues`). Earlier turns carry
their reference answers. All methods answer through grounded mode's answer path
(:mod:`kblam_integrations.model.grounded_answer`) except pure KBLaM (value blocks):

* ``kblam-grounded`` / ``kblam``: ``KBLaMModel.generate(messages, mode=...)`` with defaults.
* ``rag-last``: :class:`~kblam_integrations.baselines.rag.FaissRAG` (MiniLM, faiss flat
  inner product over key texts, refusal threshold calibrated on the dev file like KBLaM's)
  retrieving with the last user message only; two-fact questions get as many facts as
  the same agreement-gap rule as KBLaM asks for (``extra_fact_margin`` on the cosines).
* ``rag-condense``: the same backbone first rewrites the last message as a standalone
  question (one extra greedy generation, the LangChain "history-aware retriever" step),
  then the same RAG retrieves with it and answers the original conversation.

Metrics: accuracy per follow-up kind and over all answerable follow-ups, two-fact (both
values right), top-1 of the fact used on follow-ups, refusal precision / recall on the
absent-property follow-ups, 95% Wilson intervals.
"""

from __future__ import annotations

import argparse
import json
import math
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CONDENSE_SYSTEM = ("Rewrite the user's last question as one standalone question that names the thing it is "
                   "about. Write only the question.")


def wilson(k: int, n: int, z: float = 1.959964) -> list[float] | None:
    if not n:
        return None
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return [round(c - h, 3), round(c + h, 3)]


def condense(model, messages) -> str:
    """The backbone's standalone rewrite of the last user message (first line, greedy)."""
    transcript = "\n".join(f"{m['role']}: {m['content']}" for m in messages if m["role"] != "system")
    res = model.generate([{"role": "system", "content": CONDENSE_SYSTEM},
                          {"role": "user", "content": transcript}], kb=None, max_new_tokens=40, mode="grounded")
    line = res.text.strip().splitlines()[0] if res.text.strip() else ""
    return line or messages[-1]["content"]


def rag_answerer(model, min_cosine: float, condensed: bool):
    from kblam_integrations.baselines.rag import FaissRAG
    from kblam_integrations.model.grounded_answer import answer_from_facts
    from kblam_integrations.training.evaluate import is_refusal

    indexes: dict[tuple, FaissRAG] = {}

    def answer(messages, kb):
        key = tuple(kb)
        if key not in indexes:
            indexes.clear()
            indexes[key] = FaissRAG.from_kb(model, kb, index_text="key", k=model.config.max_facts + 1,
                                            min_cosine=min_cosine)
        rag = indexes[key]
        query = condense(model, messages) if condensed and len(messages) > 1 else messages[-1]["content"]
        hits = rag.retrieve(query)
        if rag.refuses(hits):
            return model.config.refusal, True, hits[0][0] if hits else None
        asked = model._asked_count([c for _, c in hits])
        res = answer_from_facts(model, messages, [t for t, _ in hits[:asked]], asked=asked, max_new_tokens=48)
        return res.text, is_refusal(res.text), hits[0][0]

    return answer


def write_report(rows: list[dict], args, run_id: str) -> list[str]:
    """``conversation.md`` from the rows measured so far (written after every method)."""
    fmt = lambda v: "–" if v is None else f"{v:.2f}"  # noqa: E731
    ci = lambda v: "" if not v else f" [{v[0]:.2f}, {v[1]:.2f}]"  # noqa: E731
    lines = [f"KB size {args.kb_size}, `{Path(args.file).name}`, run `{run_id}`.", "",
             "| method | follow-ups (n) | pronoun | ellipsis | switch back | top-1 used | two-fact (n) | "
             "refusal P | refusal R | s |", "|---|---|---:|---:|---:|---:|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['method']} | {fmt(r['follow_up_accuracy'])}{ci(r['follow_up_accuracy_ci'])} "
                     f"({r['follow_up_n']}) | {fmt(r['pronoun_accuracy'])} | {fmt(r['ellipsis_accuracy'])} | "
                     f"{fmt(r['switch_back_accuracy'])} | {fmt(r['follow_up_top1'])} | "
                     f"{fmt(r['two_fact_accuracy'])}{ci(r['two_fact_accuracy_ci'])} ({r['two_fact_n']}) | "
                     f"{fmt(r['refusal_precision'])} | {fmt(r['refusal_recall'])} | {r['seconds']:.0f} |")
    Path(args.out).with_suffix(".md").write_text("\n".join(lines) + "\n")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--file", default=str(ROOT / "tests" / "data" / "dialogues_heldout_777.json"))
    parser.add_argument("--dev", default=str(ROOT / "tests" / "data" / "synthetic_dev_calibration.json"))
    parser.add_argument("--kb-size", type=int, default=100)
    parser.add_argument("--methods", nargs="+", default=["kblam-grounded", "kblam", "rag-last", "rag-condense"])
    parser.add_argument("--max-follow-ups", type=int, default=None, help="first N follow-up dialogues (default: all)")
    parser.add_argument("--max-two-fact", type=int, default=None, help="first N two-fact questions (default: all)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks" / "conversation.json"))
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from kblam_integrations.baselines.rag import calibrate_rag_refusal
    from kblam_integrations.model.kblam_model import KBLaMModel
    from kblam_integrations.training.dialogues import evaluate_dialogues, load_dialogue_file

    model = KBLaMModel.from_pretrained()
    triples, dialogues = load_dialogue_file(args.file)
    follow = [d for d in dialogues if d.turns[0].kind != "two_fact"][: args.max_follow_ups]
    dialogues = follow + [d for d in dialogues if d.turns[0].kind == "two_fact"][: args.max_two_fact]
    run_id, rows = uuid.uuid4().hex[:12], []
    min_cosine = None
    for method in args.methods:
        t0 = time.time()
        if method.startswith("rag"):
            if min_cosine is None:
                min_cosine, _ = calibrate_rag_refusal(model, args.dev, index_text="key", kb_size=args.kb_size)
            metrics, records = evaluate_dialogues(model, triples, dialogues, kb_size=args.kb_size, mode=method,
                                                  answer=rag_answerer(model, min_cosine, method == "rag-condense"))
        else:
            metrics, records = evaluate_dialogues(model, triples, dialogues, kb_size=args.kb_size,
                                                  mode=method.replace("kblam-", "") if method != "kblam" else "kblam")
        for kind in ("follow_up", "pronoun", "ellipsis", "switch_back", "two_fact"):
            n = metrics[f"{kind}_n"]
            acc = metrics[f"{kind}_accuracy"]
            metrics[f"{kind}_accuracy_ci"] = wilson(round(acc * n), n) if n else None
        metrics.update(method=method, run_id=run_id, seconds=round(time.time() - t0, 1),
                       rag_min_cosine=min_cosine if method.startswith("rag") else None,
                       examples=[r for r in records if r["kind"] != "two_fact"][:6] + [r for r in records if r["kind"] == "two_fact"][:3])
        rows.append(metrics)
        print(json.dumps({k: v for k, v in metrics.items() if k != "examples"}), flush=True)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"run_id": run_id, "file": Path(args.file).name, "rows": rows}, indent=1) + "\n")
        write_report(rows, args, run_id)
    print("\n".join(write_report(rows, args, run_id)))


if __name__ == "__main__":
    main()
