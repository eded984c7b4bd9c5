"""Evaluate the shipped KBLaM weights: retrieval curve, answers in both modes, refusals.

Writes ``docs/benchmarks/eval.json`` and ``docs/benchmarks/eval.md``. Reproduce with::

    .venv/bin/python benchmarks/eval_sweep.py            # ~35 min on 2 CPU cores

Each row is one ``kblam_integrations.training.evaluate.evaluate_file`` call (the same code
as ``kblam eval FILE --kb-size N --mode M``). Retrieval-only rows (``generate: false``)
take the refusal decision from the model's refusal rule, as grounded mode does.
Datasets: ``tests/data/synthetic_validation.json`` (100 questions, 20 unanswerable),
``tests/data/synthetic_heldout_777.json`` (``write_eval_file(path, 150, 300,
"validation", seed=777)``: 300 questions, 60 unanswerable) and the hand-written
``tests/data/handwritten_kb.json``. Answers are generated in both modes at ``--generate-size``
(grounded: the fact's text in the prompt; pure: the fact's value blocks in attention).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=None, help="checkpoint directory (default: shipped weights)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks" / "eval.json"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--generate-size", type=int, default=100)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()

    from kblam_integrations.model.kblam_model import KBLaMModel
    from kblam_integrations.training.evaluate import evaluate_file

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    model = KBLaMModel.from_pretrained(args.weights)
    data = ROOT / "tests" / "data"
    sets = {"synthetic validation": data / "synthetic_validation.json",
            "synthetic held-out (seed 777)": data / "synthetic_heldout_777.json",
            "hand-written": data / "handwritten_kb.json"}
    runs = [(name, size, "grounded", False) for name in sets for size in args.sizes]
    runs += [(name, args.generate_size, mode, True) for name in sets for mode in ("grounded", "kblam")]
    rows = []
    for name, size, mode, generate in runs:
        t0 = time.time()
        m = evaluate_file(model, sets[name], kb_size=size, mode=mode, generate=generate,
                          max_new_tokens=args.max_new_tokens, progress=False)
        m.pop("examples", None)
        m.update(dataset=name, generate=generate, seconds=round(time.time() - t0, 1))
        rows.append(m)
        print(json.dumps(m))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + "\n")
    fmt = lambda v: "–" if v is None else f"{v:.2f}"  # noqa: E731
    lines = ["| dataset | KB size | mode | generated | top-1 | top-5 | answer acc. | refusal P | refusal R |",
             "|---|---:|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['kb_size']} | {r['mode']} | {'yes' if r['generate'] else 'no'} | "
                     f"{fmt(r['top1'])} | {fmt(r['top5'])} | {fmt(r['answer_accuracy'])} | "
                     f"{fmt(r['refusal_precision'])} | {fmt(r['refusal_recall'])} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
