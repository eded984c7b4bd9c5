"""Time to first token and peak memory as the KB grows: KBLaM vs. the KB in the prompt.

Usage::

    .venv/bin/python benchmarks/kb_scaling.py                        # 0 100 1k 10k 100k triples
    .venv/bin/python benchmarks/kb_scaling.py --sizes 0 100 --threads 1
    kblam bench scaling --sizes 0 100 1000                           # the same, via the CLI

Every (method, KB size) is measured in a fresh subprocess (``--one SIZE``), so the peak
RSS of one size does not leak into the next. In that process: load the model, run two
warm-up forwards without a KB, take the current RSS as ``model_rss_mb``, reset the peak
(``/proc/self/clear_refs``), build the KB, then time the first token.

* ``method: "kblam"``: the knowledge tokens are **random fp16 tensors of the right shape
  and layout** (``[N, kb_layers, kb_dim]`` keys and values, stored layer-major exactly as
  :class:`~kblam_integrations.encoding.kb_encoder.KBEncoder` stores them), not MiniLM
  encodings: encoding 100k triples takes over ten minutes on 2 cores, and the cost of KB
  attention does not depend on the token values (no sparsity, no early exit: every token
  is scored at every KB layer). Encoding is a one-time preparation cost and is **not** in
  ``ttft_s``: ``encode_s`` is measured on real triples (up to ``--encode-sample``) and
  extrapolated linearly (``encode_s_estimated``).
* ``method: "kblam-scores"``: the same tokens, with the attention context in
  *scores-only* mode (:mod:`kblam_integrations.attention.scoring`): the KB query of the
  prompt is scored against every knowledge-token key and the backbone's outputs are left
  untouched. This is what ``generate()`` runs for a checkpoint whose value adapter is not
  trained (``inject_values: false``, the shipped weights) and what grounded mode's
  retrieval pass runs; ``kblam`` is the full rectangular attention (values injected).
* ``method: "icl"``: every triple written into the prompt as ``the {property} of {name}
  is {value}.`` lines (synthetic validation triples), up to the backbone's context
  limit (``max_position_embeddings``, 8192 for SmolLM2); larger KBs are reported with
  ``fits: false`` and ``ttft_s: null``, and one more row measures the largest KB that
  does fit (``note``), so the ICL cost is shown right up to the context limit.

``ttft_s`` (time to first token) = building the KB attention context (what each
``generate()`` call does, recording the per-triple attention as ``generate()`` does:
no copy of the KB, see ``kb_shares_storage``) + one prefill forward of the
chat-formatted question + the argmax of the first token; median of ``--repeats`` (3)
after one warm-up. For KB sizes > 0, ``ttft_empty_s`` is the same measurement without a
KB, taken in the same process and interleaved run by run with the KB runs, so the
TTFT ratio (the target) compares two timings taken under the same machine load.
``prefill_s`` is the forward alone (not measured for prompts over 2048 tokens, whose
``ttft_s`` is a single run). ``kb_token_mb``
is the fp16 size of the knowledge tokens (keys + values); ``kb_rss_overhead`` =
(peak RSS − model RSS) / ``kb_token_mb``; the peak covers building the tokens and every
timed run.
Writes ``docs/benchmarks/kb_scaling.json`` (a list of rows) and ``kb_scaling.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import namedtuple
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

DEFAULT_SIZES = [0, 100, 1000, 10_000, 100_000]
DEFAULT_OUT = C.DOCS_DIR / "kb_scaling.json"
QUESTION = "What is the founder of Veltrano Dynamics?"
KBLAM_METHODS = ("kblam", "kblam-scores", "kblam-index-ivf")
INDEX_METHODS = {"kblam-index-ivf": "ivf"}
TTFT_RATIO_TARGET = 2.0  # at 10k triples vs. the empty KB
RSS_OVERHEAD_TARGET = 1.10  # peak <= model + 1.1 x fp16 token size

Placeholder = namedtuple("Placeholder", "name property value")

COLUMNS = [("method", "method"), ("kb_size", "KB size"), ("ttft_s", "TTFT (s)"),
           ("ttft_empty_s", "TTFT empty KB, same run (s)"), ("ttft_ratio", "TTFT / empty"), ("prefill_s", "prefill (s)"),
           ("prompt_tokens", "prompt tokens"), ("peak_rss_mb", "peak RSS (MB)"), ("model_rss_mb", "model RSS (MB)"),
           ("kb_token_mb", "KB tokens fp16 (MB)"), ("kb_rss_overhead", "RSS growth / token MB"),
           ("encode_s", "encode (s)"), ("index_build_s", "index build (s)"), ("index_mb", "index (MB)"),
           ("retrieval_top1", "retrieval top-1 (held-out)"), ("retrieval_top1_gap", "top-1 gap to exact")]
RETRIEVAL_JSON = C.DOCS_DIR / "retrieval_scaling.json"
# kb_scaling method -> the retrieval_scaling method measured on the same path
RETRIEVAL_METHOD = {"kblam": "kblam", "kblam-scores": "kblam", "kblam-index-ivf": "kblam-index-ivf"}


# ------------------------------------------------------------------- one measurement
def random_kb_tokens(model, n: int, seed: int = 0, *, values: bool = True):
    """``KBTokens`` of ``n`` random fp16 knowledge tokens (placeholder triples).

    Same storage as the encoder's (:func:`~kblam_integrations.encoding.manager.empty_tokens`:
    ``[n, layers, dim]``, layer-major), filled in place: no fp32 temporary.
    """
    import torch

    from kblam_integrations.encoding.tokens import KBTokens, absent_values, empty_tokens

    layers, dim = model.adapters.num_kb_layers, model.adapters.kb_dim
    gen = torch.Generator().manual_seed(seed)
    keys = empty_tokens(n, layers, dim, dtype=torch.float16)
    if values:
        vals = empty_tokens(n, layers, dim, dtype=torch.float16)
    else:  # keys only, as KBManager stores them when values are never read
        vals = absent_values(n, layers, dim, dtype=torch.float16)
    for j in range(layers):
        keys[:, j].normal_(0.0, 0.5, generator=gen)
        if values:
            vals[:, j].normal_(0.0, 0.5, generator=gen)
    triples = tuple(Placeholder(f"entity {i}", "property", f"value {i}") for i in range(n))
    return KBTokens(version=0, triples=triples, keys=keys, values=vals)


def indexed_kb_tokens(model, n: int, kind: str, seed: int = 0):
    """Random keys (as :func:`random_kb_tokens`), random unit key embeddings and a ``kind`` key index.

    Keys only: the indexed retrieval pass reads keys and never values, so values are a
    zero-stride view (no memory). Returns ``(tokens, index_build_s)``.
    """
    import torch

    from kblam_integrations.encoding.key_index import KeyIndex
    from kblam_integrations.encoding.tokens import KBTokens

    full = random_kb_tokens(model, n, seed, values=False)
    gen = torch.Generator().manual_seed(seed + 1)
    emb = torch.nn.functional.normalize(torch.randn(n, model.config.encoder_dim, generator=gen), dim=-1)
    ids = torch.arange(n)
    t0 = time.perf_counter()
    index = KeyIndex.build(emb, ids, kind, nprobe=model.config.kb_index_nprobe, metric=model.encoder.index_metric())
    build_s = time.perf_counter() - t0
    return KBTokens(0, full.triples, full.keys, full.values, emb.half(), ids, index), build_s


def shares_storage(ctx, tokens) -> bool:
    """Whether the attention context reads the KB's own tensors (no copy of the knowledge tokens)."""
    return (ctx.keys.untyped_storage().data_ptr() == tokens.keys.untyped_storage().data_ptr()
            and ctx.values.untyped_storage().data_ptr() == tokens.values.untyped_storage().data_ptr())


def paired_median(fn_a, fn_b, repeats: int = 3, warmup: int = 1) -> tuple[float, float]:
    """Median wall times of ``fn_a`` and ``fn_b``, run alternately (same load for both)."""
    import statistics

    for _ in range(warmup):
        fn_a()
        fn_b()
    ta, tb = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn_a()
        ta.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        fn_b()
        tb.append(time.perf_counter() - t0)
    return statistics.median(ta), statistics.median(tb)


def icl_max_fit(model, limit: int, hi: int) -> int:
    """The largest number of synthetic triples whose ICL prompt (+1 generated token) fits ``limit``."""
    triples = synthetic_triples(hi)

    def fits(n: int) -> bool:
        text = C.icl_prompt(triples[:n], QUESTION) if n else QUESTION
        return model.prompt_ids(text, check_length=False).shape[1] + 1 <= limit

    lo = 0  # fits(lo) holds, fits(hi) does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def synthetic_triples(n: int, seed: int = 0) -> list:
    from kblam_integrations.training.synthetic import SyntheticKBGenerator

    return SyntheticKBGenerator(split="validation", seed=seed).distractors(n) if n else []


def measure_one(size: int, method: str = "kblam", *, weights: str | None = None, repeats: int = 3,
                encode_sample: int = 256, model=None, trained: bool | None = None,
                fit_below: int | None = None) -> dict:
    """Measure one (method, KB size) in this process; see the module docstring.

    ``fit_below`` (ICL only): ignore ``size`` and measure the largest KB smaller than
    ``fit_below`` triples whose prompt fits the context window.
    """
    import torch

    from kblam_integrations.attention.context import use_kb

    if model is None:
        model, trained = C.load_model(weights)
    limit = C.context_limit(model)
    if method == "icl" and fit_below is not None:
        size = icl_max_fit(model, limit, fit_below)
    row: dict = {"method": method, "kb_size": size, "trained_weights": trained, "threads": torch.get_num_threads(),
                 "context_limit": limit}
    if fit_below is not None and method == "icl":
        row["note"] = "largest KB that fits the context window"

    ids = model.prompt_ids(QUESTION)
    with torch.no_grad():
        for _ in range(2):
            model.backbone(input_ids=ids, attention_mask=torch.ones_like(ids))

    encode_s = None
    estimated = False
    kblam = method in KBLAM_METHODS
    if kblam:  # the sentence encoder is part of KBLaM's footprint at every size (size 0 too)
        model.encode_kb(synthetic_triples(4, seed=2))
    if kblam and size > 0 and encode_sample > 0:
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

    if kblam and size and method not in INDEX_METHODS:
        # Keys and values in fp16: refuse up front what cannot fit, as KBManager does
        from kblam_integrations.errors import InsufficientMemoryError
        from kblam_integrations.memory import check_memory

        need = 2 * size * model.adapters.num_kb_layers * model.adapters.kb_dim * 2
        try:
            check_memory(need, "cpu", what=f"{size} triples of keys and values")
        except InsufficientMemoryError as exc:
            row.update(fits=False, ttft_s=None, prefill_s=None, kb_token_mb=need / 2**20, peak_rss_mb=None,
                       note=f"refused up front: {exc}")
            return row
    if kblam:
        if method in INDEX_METHODS and size:
            tokens, row["index_build_s"] = indexed_kb_tokens(model, size, INDEX_METHODS[method])
            row["index_mb"] = tokens.index.nbytes / 2**20
            # what the indexed path holds: fp16 keys, fp16 key embeddings and the index
            token_bytes = tokens.keys.numel() * 2 + tokens.key_embeddings.numel() * 2 + row["index_mb"] * 2**20
        else:
            tokens = random_kb_tokens(model, size) if size else None
            token_bytes = (tokens.keys.numel() + tokens.values.numel()) * 2 if tokens is not None else 0
        row["kb_token_mb"] = token_bytes / 2**20
        row["prompt_tokens"] = int(ids.shape[1])
        prompt = ids
        fits = True
    else:
        text = C.icl_prompt(triples, QUESTION) if triples else QUESTION
        prompt = model.prompt_ids(text, check_length=False)
        row["kb_token_mb"] = 0.0
        row["prompt_tokens"] = int(prompt.shape[1])
        fits = prompt.shape[1] + 1 <= limit
        tokens = None
    row["fits"] = bool(fits)

    if fits:
        mask = torch.ones_like(prompt)
        # transformers' generate() computes the first token's logits only (logits_to_keep=1):
        # the full [prompt, vocab] logits would add a 49k-wide lm_head GEMM per prompt token
        # to both the KB and the empty-KB time, flattering the ratio.
        last_logits = {"logits_to_keep": 1} if C.supports_logits_to_keep(model.backbone) else {}
        scores_only = method in ("kblam-scores", *INDEX_METHODS)

        def first_token(kb=tokens) -> int:
            # What generate() does per call: build the KB context (recording retrieval
            # scores, as generate() does), prefill with the logits of the last position only
            # (generate() passes logits_to_keep=1), pick the first token.
            with torch.no_grad():
                ctx = model.kb_context(kb, record=True, scores_only=scores_only) if kb is not None else None
                with use_kb(ctx):
                    logits = model.backbone(input_ids=prompt, attention_mask=mask, use_cache=True,
                                            **last_logits).logits
                return int(logits[0, -1].argmax())

        # ICL near the context limit: one forward takes tens of seconds, so one timed run
        # (no extra warm-up: the model is warm) and no separate prefill timing.
        long_prompt = prompt.shape[1] > 2048
        if tokens is not None:
            # The empty-KB time is taken in the same process, interleaved run by run with the
            # KB runs, so that both see the same machine load (the ratio is the target).
            row["ttft_s"], row["ttft_empty_s"] = paired_median(first_token, lambda: first_token(None), repeats)
        elif long_prompt:
            row["ttft_s"] = C.median_time(first_token, repeats=1, warmup=0)
        else:
            row["ttft_s"] = C.median_time(first_token, repeats=repeats)
        ctx = model.kb_context(tokens, scores_only=scores_only) if tokens is not None else None
        if ctx is not None:
            row["kb_shares_storage"] = shares_storage(ctx, tokens)

        def prefill() -> None:
            with torch.no_grad(), use_kb(ctx):
                model.backbone(input_ids=prompt, attention_mask=mask, use_cache=True, **last_logits)

        row["prefill_s"] = None if long_prompt else C.median_time(prefill, repeats=repeats, warmup=0)
        del ctx
        if row.get("ttft_empty_s"):
            row["ttft_ratio"] = row["ttft_s"] / row["ttft_empty_s"]
    else:
        row["ttft_s"] = None
        row["prefill_s"] = None
    row["peak_rss_mb"] = C.peak_rss_mb()
    row["loadavg_1m"] = os.getloadavg()[0]  # other work on the machine during the measurement
    if row["kb_token_mb"]:
        row["kb_rss_overhead"] = (row["peak_rss_mb"] - model_rss) / row["kb_token_mb"]
    else:
        row["kb_rss_overhead"] = None
    return row


# ------------------------------------------------------------------------- the sweep
def check_targets(rows: list[dict]) -> list[str]:
    """Human-readable verdicts on the targets (TTFT ratio, memory overhead and linearity, 100k, no copies)."""
    lines = []
    for method in KBLAM_METHODS:
        lines += _check_method(rows, method)
    return lines


def _check_method(rows: list[dict], method: str) -> list[str]:
    kblam = {r["kb_size"]: r for r in rows if r["method"] == method and r.get("ttft_s")}
    lines = []
    base = kblam[0]["ttft_s"] if 0 in kblam else None
    for size, r in sorted(kblam.items()):
        if size == 0:
            continue
        tag = " (target <= 2x at 10k)" if size == 10_000 else " (no target at this size)"
        if r.get("ttft_empty_s"):
            ratio = r["ttft_s"] / r["ttft_empty_s"]
            how = f"{r['ttft_s']:.3f}s vs {r['ttft_empty_s']:.3f}s empty, same process, interleaved"
            if base:
                how += f"; {r['ttft_s'] / base:.2f}x the separate size-0 row"
        elif base:
            ratio = r["ttft_s"] / base
            how = f"{r['ttft_s']:.3f}s vs {base:.3f}s (size-0 row)"
        else:
            continue
        ok = "PASS" if ratio <= TTFT_RATIO_TARGET else "over 2x"
        lines.append(f"{method}: TTFT at {size} triples = {ratio:.2f}x the empty KB ({how}){tag}: {ok}")
    big = [(size, r) for size, r in sorted(kblam.items())
           if r.get("kb_rss_overhead") is not None and r["kb_token_mb"] >= 50]  # small KBs: noise dominates
    for size, r in big:
        ok = "PASS" if r["kb_rss_overhead"] <= RSS_OVERHEAD_TARGET else "over 1.1x"
        lines.append(f"{method}: RSS growth at {size} triples = {r['kb_rss_overhead']:.3f}x the fp16 token size "
                     f"({r['peak_rss_mb'] - r['model_rss_mb']:.0f} MB over the model for {r['kb_token_mb']:.0f} MB "
                     f"of tokens; target <= 1.1x): {ok}")
    if len(big) >= 2:
        (s0, r0), (s1, r1) = big[0], big[-1]
        g0, g1 = r0["peak_rss_mb"] - r0["model_rss_mb"], r1["peak_rss_mb"] - r1["model_rss_mb"]
        slope = (g1 - g0) / (r1["kb_token_mb"] - r0["kb_token_mb"])
        ok = "PASS" if slope <= RSS_OVERHEAD_TARGET else "over 1.1x"
        lines.append(f"{method}: RSS growth is linear in KB size: {s0} -> {s1} triples adds {g1 - g0:.0f} MB for "
                     f"{r1['kb_token_mb'] - r0['kb_token_mb']:.0f} MB of tokens ({slope:.3f} MB per token MB): {ok}")
    if 100_000 in kblam:
        r = kblam[100_000]
        lines.append(f"{method}: 100000 triples run on this machine: peak RSS {r['peak_rss_mb']:.0f} MB, "
                     f"TTFT {r['ttft_s']:.2f}s: PASS")
    shared = [r.get("kb_shares_storage") for size, r in kblam.items() if size > 0]
    if shared:
        ok = "PASS" if all(shared) else "FAIL"
        lines.append(f"{method}: the attention context reads the KB's own tensors (no copy of the knowledge tokens) "
                     f"at every size: {ok}")
    return lines


def run(sizes: list[int], *, methods: tuple[str, ...] = (*KBLAM_METHODS, "icl"), threads: int | None = None,
        weights: str | None = None, repeats: int = 3, encode_sample: int = 256, isolate: bool = True,
        progress: bool = True, icl_limit: bool = True) -> list[dict]:
    """Measure every (method, size); each in a fresh subprocess when ``isolate``.

    ``icl_limit``: when an ICL size does not fit, also measure the largest KB that does.
    """
    rows = []
    model = trained = None
    for method in methods:
        too_big = None
        plan = [(size, None) for size in sizes]
        i = 0
        while i < len(plan):
            size, fit_below = plan[i]
            i += 1
            if method == "icl" and fit_below is None and too_big is not None and size >= too_big:
                rows.append({"method": "icl", "kb_size": size, "fits": False, "ttft_s": None, "prefill_s": None,
                             "peak_rss_mb": None, "model_rss_mb": None, "kb_token_mb": 0.0, "encode_s": None,
                             "prompt_tokens": None, "note": f"does not fit (already {too_big} triples did not)"})
                continue
            t0 = time.perf_counter()
            if isolate:
                args = ["--one", str(size), "--method", method, "--repeats", str(repeats),
                        "--encode-sample", str(encode_sample)]
                if fit_below is not None:
                    args += ["--fit-below", str(fit_below)]
                if threads is not None:
                    args += ["--threads", str(threads)]
                if weights is not None:
                    args += ["--weights", weights]
                row = C.run_subprocess(Path(__file__).resolve(), args)
            else:
                if model is None:
                    model, trained = C.load_model(weights)
                row = measure_one(size, method, repeats=repeats, encode_sample=encode_sample, model=model,
                                  trained=trained, fit_below=fit_below)
            if method == "icl" and not row.get("fits", True):
                row["note"] = "does not fit in the context window"
                too_big = size
                prev = max((r["kb_size"] for r in rows if r["method"] == "icl" and r.get("fits")), default=None)
                if icl_limit and fit_below is None and (prev is None or prev + 1 < size):
                    plan.insert(i, (size, size))  # then the largest that fits, next
            rows.append(row)
            size = row["kb_size"]
            if progress:
                ttft = "does not fit" if row.get("ttft_s") is None else f"ttft {row['ttft_s']:.3f}s"
                print(f"  {method:12s} {size:>7d} triples: {ttft}, peak RSS {C.fmt(row.get('peak_rss_mb'), 0)} MB "
                      f"({time.perf_counter() - t0:.0f}s)", flush=True)
    order = {m: i for i, m in enumerate(methods)}
    return sorted(rows, key=lambda r: (order[r["method"]], r["kb_size"]))


def attach_retrieval(rows: list[dict], path: Path = RETRIEVAL_JSON) -> None:
    """Held-out retrieval top-1 of each row's path and size, from ``benchmarks/retrieval_scaling.py``'s
    latest run (real MiniLM-encoded KBs; the timing rows use random tokens of the same shape)."""
    if not path.is_file():
        return
    measured = {(r["method"], r["kb_size"]): r for r in json.loads(path.read_text())["rows"]}
    for row in rows:
        found = measured.get((RETRIEVAL_METHOD.get(row["method"]), row["kb_size"]))
        if found is None:
            continue
        row.update(retrieval_top1=found["top1"], retrieval_top1_ci=found["top1_ci"],
                   retrieval_top1_reranked=found.get("top1_reranked"), retrieval_run_id=found["run_id"])
        exact = measured.get(("kblam", row["kb_size"]))
        if row["method"] in INDEX_METHODS and exact is not None:
            row["retrieval_top1_gap"] = found["top1"] - exact["top1"]


def write_markdown(path: Path, rows: list[dict], checks: list[str], command: str,
                   extra_notes: list[str] | None = None) -> None:
    info = C.machine_info()
    text = [f"Measured with `{command}` ({info['cpus']} CPUs, {info.get('ram_gib', '?')} GiB RAM, "
            f"torch {info['torch']}, {rows[0].get('threads', '?') if rows else '?'} thread(s)).\n",
            C.markdown_table(rows, COLUMNS)]
    if checks:
        text.append("## Targets\n\n" + "\n".join(f"- {c}" for c in checks) + "\n")
    notes = [
        "KBLaM rows: random fp16 knowledge tokens in the encoder's layer-major layout (see the script's "
        "docstring); `encode (s)` is the one-time cost of encoding that many real triples with MiniLM + "
        "the adapters (extrapolated from a sample), not part of the TTFT.",
        "`TTFT empty KB, same run` is the empty-KB time measured in the same process, interleaved with the "
        "KB runs; `TTFT / empty` is the ratio the target is about. `RSS growth / token MB` = (peak RSS - "
        "model RSS) / fp16 size of the knowledge tokens: 1.0 means the tokens and nothing else.",
        "ICL rows: all triples in the prompt; the largest KB that fits the context window is measured too.",
        "The prefill computes the logits of the last prompt position only (`logits_to_keep=1`), as "
        "transformers' `generate()` does; logits for every prompt position would add a vocabulary-wide "
        "GEMM per token to both the KB and the empty-KB time and flatter the ratio.",
    ]
    loads = [r["loadavg_1m"] for r in rows if r.get("loadavg_1m") is not None]
    if loads:
        notes.append(f"Machine load (1-minute load average) at the end of each measurement: "
                     f"{min(loads):.2f} to {max(loads):.2f} on {info['cpus']} CPUs; other work on the machine "
                     "slows every timing, which is why the TTFT ratio uses same-process interleaved timings.")
    notes += list(extra_notes or [])
    text.append("## Notes\n\n" + "\n".join(f"- {n}" for n in notes) + "\n")
    path.write_text("\n".join(text), encoding="utf-8")


def _strip_notes(argv: list[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--note":
            skip = True
        elif not a.startswith("--note="):
            out.append(a)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog="See the module docstring for the method.")
    ap.add_argument("--sizes", type=int, nargs="+", default=DEFAULT_SIZES, help="KB sizes in triples")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file to write (the .md goes next to it)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    ap.add_argument("--weights", default=None, help="KBLaM checkpoint (default: shipped, else untrained)")
    ap.add_argument("--methods", nargs="+", choices=[*KBLAM_METHODS, "icl"], default=[*KBLAM_METHODS, "icl"])
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per size (median)")
    ap.add_argument("--encode-sample", type=int, default=256, help="real triples encoded to estimate encode_s")
    ap.add_argument("--no-isolate", action="store_true", help="measure in this process (peak RSS then leaks)")
    ap.add_argument("--no-icl-limit", action="store_true",
                    help="do not add the ICL row at the largest KB that fits the context window")
    ap.add_argument("--fit-below", type=int, default=None, help=argparse.SUPPRESS)  # internal, with --one
    ap.add_argument("--note", action="append", default=[], help="extra note for the markdown report (repeatable)")
    ap.add_argument("--render-only", action="store_true",
                    help="measure nothing: rewrite the markdown from the rows already in --out")
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # internal: one measurement
    ap.add_argument("--method", choices=[*KBLAM_METHODS, "icl"], default="kblam", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if any(s < 0 for s in args.sizes):
        ap.error("--sizes must be >= 0")
    C.setup_env(args.threads)

    if args.one is not None:
        C.emit_result(measure_one(args.one, args.method, weights=args.weights, repeats=args.repeats,
                                  encode_sample=args.encode_sample, fit_below=args.fit_below))
        return 0

    if args.render_only:
        import json

        rows = json.loads(args.out.read_text(encoding="utf-8"))
        threads = rows[0].get("threads") if rows else None
        command = "python benchmarks/kb_scaling.py" + (f" --threads {threads}" if threads else "")
        checks = check_targets(rows)
        write_markdown(args.out.with_suffix(".md"), rows, checks, command, args.note)
        print("\n".join(checks))
        print(f"wrote {args.out.with_suffix('.md')}")
        return 0
    command = " ".join(["python benchmarks/kb_scaling.py",
                        *_strip_notes(argv if argv is not None else sys.argv[1:])])
    print(f"KB scaling: sizes {args.sizes}, methods {args.methods}", flush=True)
    rows = run(sorted(args.sizes), methods=tuple(args.methods), threads=args.threads, weights=args.weights,
               repeats=args.repeats, encode_sample=args.encode_sample, isolate=not args.no_isolate,
               icl_limit=not args.no_icl_limit)
    attach_retrieval(rows)
    checks = check_targets(rows)
    C.write_json(args.out, rows)
    write_markdown(args.out.with_suffix(".md"), rows, checks, command, args.note)
    C.print_table(rows, COLUMNS, title="KB scaling (SmolLM2)")
    for c in checks:
        print(c)
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
