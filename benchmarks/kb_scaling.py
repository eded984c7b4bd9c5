"""Time to first token and peak memory as the KB grows: KBLaM vs. the KB in the prompt.

Usage::

    .venv/bin/python benchmarks/kb_scaling.py                        # 0 100 1k 10k 100k triples
    .venv/bin/python benchmarks/kb_scaling.py --sizes 0 100 --threads 1
    kblam bench scaling --sizes 0 100 1000                           # the same, via the CLI

Every (method, KB size) is measured in a fresh subprocess (``--one SIZE``), so the peak
RSS of one size does not leak into the next. In that process: load the model, run two
warm-up forwards without a KB, take the current RSS as ``model_rss_mb``, reset the peak
(``/proc/self/clear_refs``), build the KB, then time the first token.

* ``method: "kblam"``: the knowledge tokens are **random fp16 tensors of the right shape**
  (``[N, kb_layers, kb_dim]`` keys and values), not MiniLM encodings: encoding 100k
  triples would take most of an hour on 2 cores, and the cost of KB attention does not
  depend on the token values (no sparsity, no early exit: every token is scored at every
  KB layer). ``encode_s`` is measured on real triples (up to ``--encode-sample``) and
  extrapolated linearly (``encode_s_estimated``).
* ``method: "icl"``: every triple written into the prompt as ``the {property} of {name}
  is {value}.`` lines (synthetic validation triples), up to the backbone's context
  limit (``max_position_embeddings``, 8192 for SmolLM2); larger KBs are reported with
  ``fits: false`` and ``ttft_s: null``.

``ttft_s`` (time to first token) = building the KB attention context (what each
``generate()`` call does) + one prefill forward of the chat-formatted question +
the argmax of the first token; median of ``--repeats`` (3) after one warm-up.
``prefill_s`` is the forward alone. ``kb_token_mb`` is the fp16 size of the knowledge
tokens (keys + values); ``kb_rss_overhead`` = (peak RSS − model RSS) / ``kb_token_mb``.
Writes ``docs/benchmarks/kb_scaling.json`` (a list of rows) and ``kb_scaling.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import namedtuple
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

DEFAULT_SIZES = [0, 100, 1000, 10_000, 100_000]
DEFAULT_OUT = C.DOCS_DIR / "kb_scaling.json"
QUESTION = "What is the founder of Veltrano Dynamics?"
TTFT_RATIO_TARGET = 2.0  # at 10k triples vs. the empty KB
RSS_OVERHEAD_TARGET = 1.10  # peak <= model + 1.1 x fp16 token size

Placeholder = namedtuple("Placeholder", "name property value")

COLUMNS = [("method", "method"), ("kb_size", "KB size"), ("ttft_s", "TTFT (s)"), ("prefill_s", "prefill (s)"),
           ("prompt_tokens", "prompt tokens"), ("peak_rss_mb", "peak RSS (MB)"), ("model_rss_mb", "model RSS (MB)"),
           ("kb_token_mb", "KB tokens fp16 (MB)"), ("kb_rss_overhead", "RSS growth / token MB"),
           ("encode_s", "encode (s)")]


# ------------------------------------------------------------------- one measurement
def random_kb_tokens(model, n: int, seed: int = 0, chunk: int = 4096):
    """``KBTokens`` of ``n`` random fp16 knowledge tokens (placeholder triples), built chunk by chunk."""
    import torch

    from kblam_integrations.encoding.manager import KBTokens

    layers, dim = model.adapters.num_kb_layers, model.adapters.kb_dim
    gen = torch.Generator().manual_seed(seed)
    keys = torch.empty(n, layers, dim, dtype=torch.float16)
    values = torch.empty(n, layers, dim, dtype=torch.float16)
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        keys[lo:hi] = torch.randn(hi - lo, layers, dim, generator=gen).mul_(0.5)
        values[lo:hi] = torch.randn(hi - lo, layers, dim, generator=gen).mul_(0.5)
    triples = tuple(Placeholder(f"entity {i}", "property", f"value {i}") for i in range(n))
    return KBTokens(version=0, triples=triples, keys=keys, values=values)


def synthetic_triples(n: int, seed: int = 0) -> list:
    from kblam_integrations.training.synthetic import SyntheticKBGenerator

    return SyntheticKBGenerator(split="validation", seed=seed).distractors(n) if n else []


def measure_one(size: int, method: str = "kblam", *, weights: str | None = None, repeats: int = 3,
                encode_sample: int = 256, model=None, trained: bool | None = None) -> dict:
    """Measure one (method, KB size) in this process; see the module docstring."""
    import torch

    from kblam_integrations.attention.context import use_kb

    if model is None:
        model, trained = C.load_model(weights)
    limit = C.context_limit(model)
    row: dict = {"method": method, "kb_size": size, "trained_weights": trained, "threads": torch.get_num_threads(),
                 "context_limit": limit}

    ids = model.prompt_ids(QUESTION)
    with torch.no_grad():
        for _ in range(2):
            model.backbone(input_ids=ids, attention_mask=torch.ones_like(ids))

    encode_s = None
    estimated = False
    if method == "kblam":  # the sentence encoder is part of KBLaM's footprint at every size (size 0 too)
        model.encode_kb(synthetic_triples(4, seed=2))
    if method == "kblam" and size > 0 and encode_sample > 0:
        sample = synthetic_triples(min(size, encode_sample), seed=1)
        model.encode_kb(sample[:8])  # warm-up
        t0 = time.perf_counter()
        real = model.encode_kb(sample)
        per_triple = (time.perf_counter() - t0) / len(sample)
        del real
        encode_s = per_triple * size
        estimated = len(sample) < size
    triples = synthetic_triples(size) if method == "icl" else None
    C.reset_peak()
    model_rss = C.rss_mb()
    row.update(model_rss_mb=model_rss, encode_s=encode_s, encode_s_estimated=estimated)

    if method == "kblam":
        tokens = random_kb_tokens(model, size) if size else None
        token_bytes = (tokens.keys.numel() + tokens.values.numel()) * 2 if tokens is not None else 0
        row["kb_token_mb"] = token_bytes / 2**20
        row["prompt_tokens"] = int(ids.shape[1])
        prompt = ids
        fits = True
    else:
        text = C.icl_prompt(triples, QUESTION) if triples else QUESTION
        prompt = model.prompt_ids(text)
        row["kb_token_mb"] = 0.0
        row["prompt_tokens"] = int(prompt.shape[1])
        fits = prompt.shape[1] + 1 <= limit
        tokens = None
    row["fits"] = bool(fits)

    if fits:
        mask = torch.ones_like(prompt)

        def first_token() -> int:
            with torch.no_grad():
                ctx = model.kb_context(tokens) if tokens is not None else None
                with use_kb(ctx):
                    logits = model.backbone(input_ids=prompt, attention_mask=mask, use_cache=True).logits
                return int(logits[0, -1].argmax())

        ctx = model.kb_context(tokens) if tokens is not None else None

        def prefill() -> None:
            with torch.no_grad(), use_kb(ctx):
                model.backbone(input_ids=prompt, attention_mask=mask, use_cache=True)

        row["ttft_s"] = C.median_time(first_token, repeats=repeats)
        row["prefill_s"] = C.median_time(prefill, repeats=repeats, warmup=0)
        del ctx
    else:
        row["ttft_s"] = None
        row["prefill_s"] = None
    row["peak_rss_mb"] = C.peak_rss_mb()
    if row["kb_token_mb"]:
        row["kb_rss_overhead"] = (row["peak_rss_mb"] - model_rss) / row["kb_token_mb"]
    else:
        row["kb_rss_overhead"] = None
    return row


# ------------------------------------------------------------------------- the sweep
def check_targets(rows: list[dict]) -> list[str]:
    """Human-readable verdicts on the targets (empty-KB TTFT ratio, memory overhead)."""
    kblam = {r["kb_size"]: r for r in rows if r["method"] == "kblam" and r.get("ttft_s")}
    lines = []
    if 0 in kblam:
        base = kblam[0]["ttft_s"]
        for size, r in sorted(kblam.items()):
            if size == 0:
                continue
            ratio = r["ttft_s"] / base
            tag = " (target <= 2x at 10k)" if size == 10_000 else ""
            ok = "PASS" if ratio <= TTFT_RATIO_TARGET else "over 2x"
            lines.append(f"TTFT at {size} triples = {ratio:.2f}x the empty KB{tag}: {ok}")
    for size, r in sorted(kblam.items()):
        if r.get("kb_rss_overhead") is not None and r["kb_token_mb"] >= 50:  # small KBs: noise dominates
            ok = "PASS" if r["kb_rss_overhead"] <= RSS_OVERHEAD_TARGET else "over 1.1x"
            lines.append(f"RSS growth at {size} triples = {r['kb_rss_overhead']:.2f}x the fp16 token size "
                         f"({r['kb_token_mb']:.0f} MB): {ok}")
    return lines


def run(sizes: list[int], *, methods: tuple[str, ...] = ("kblam", "icl"), threads: int | None = None,
        weights: str | None = None, repeats: int = 3, encode_sample: int = 256, isolate: bool = True,
        progress: bool = True) -> list[dict]:
    """Measure every (method, size); each in a fresh subprocess when ``isolate``."""
    rows = []
    model = trained = None
    for method in methods:
        too_big = None
        for size in sizes:
            if method == "icl" and too_big is not None and size >= too_big:
                rows.append({"method": "icl", "kb_size": size, "fits": False, "ttft_s": None, "prefill_s": None,
                             "peak_rss_mb": None, "model_rss_mb": None, "kb_token_mb": 0.0, "encode_s": None,
                             "prompt_tokens": None, "note": f"does not fit (already {too_big} triples did not)"})
                continue
            t0 = time.perf_counter()
            if isolate:
                args = ["--one", str(size), "--method", method, "--repeats", str(repeats),
                        "--encode-sample", str(encode_sample)]
                if threads is not None:
                    args += ["--threads", str(threads)]
                if weights is not None:
                    args += ["--weights", weights]
                row = C.run_subprocess(Path(__file__).resolve(), args)
            else:
                if model is None:
                    model, trained = C.load_model(weights)
                row = measure_one(size, method, repeats=repeats, encode_sample=encode_sample, model=model,
                                  trained=trained)
            if method == "icl" and not row.get("fits", True):
                row["note"] = "does not fit in the context window"
                too_big = size
            rows.append(row)
            if progress:
                ttft = "does not fit" if row.get("ttft_s") is None else f"ttft {row['ttft_s']:.3f}s"
                print(f"  {method:5s} {size:>7d} triples: {ttft}, peak RSS {C.fmt(row.get('peak_rss_mb'), 0)} MB "
                      f"({time.perf_counter() - t0:.0f}s)", flush=True)
    return rows


def write_markdown(path: Path, rows: list[dict], checks: list[str], command: str) -> None:
    info = C.machine_info()
    text = [f"Measured with `{command}` ({info['cpus']} CPUs, {info.get('ram_gib', '?')} GiB RAM, "
            f"torch {info['torch']}, {rows[0].get('threads', '?') if rows else '?'} thread(s)).\n",
            C.markdown_table(rows, COLUMNS)]
    if checks:
        text.append("\n" + "\n".join(f"- {c}" for c in checks) + "\n")
    path.write_text("\n".join(text), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog="See the module docstring for the method.")
    ap.add_argument("--sizes", type=int, nargs="+", default=DEFAULT_SIZES, help="KB sizes in triples")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file to write (the .md goes next to it)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    ap.add_argument("--weights", default=None, help="KBLaM checkpoint (default: shipped, else untrained)")
    ap.add_argument("--methods", nargs="+", choices=["kblam", "icl"], default=["kblam", "icl"])
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per size (median)")
    ap.add_argument("--encode-sample", type=int, default=256, help="real triples encoded to estimate encode_s")
    ap.add_argument("--no-isolate", action="store_true", help="measure in this process (peak RSS then leaks)")
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # internal: one measurement
    ap.add_argument("--method", choices=["kblam", "icl"], default="kblam", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if any(s < 0 for s in args.sizes):
        ap.error("--sizes must be >= 0")
    C.setup_env(args.threads)

    if args.one is not None:
        C.emit_result(measure_one(args.one, args.method, weights=args.weights, repeats=args.repeats,
                                  encode_sample=args.encode_sample))
        return 0

    command = " ".join(["python benchmarks/kb_scaling.py", *(argv if argv is not None else sys.argv[1:])])
    print(f"KB scaling: sizes {args.sizes}, methods {args.methods}", flush=True)
    rows = run(sorted(args.sizes), methods=tuple(args.methods), threads=args.threads, weights=args.weights,
               repeats=args.repeats, encode_sample=args.encode_sample, isolate=not args.no_isolate)
    checks = check_targets(rows)
    C.write_json(args.out, rows)
    write_markdown(args.out.with_suffix(".md"), rows, checks, command)
    C.print_table(rows, COLUMNS, title="KB scaling (SmolLM2)")
    for c in checks:
        print(c)
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
