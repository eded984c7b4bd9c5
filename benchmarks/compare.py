"""KBLaM vs. in-context KB (ICL) vs. RAG on one machine, one backbone, one KB.

Usage::

    .venv/bin/python benchmarks/compare.py                            # sizes 10 100 1000 10000, 20 questions
    .venv/bin/python benchmarks/compare.py --sizes 10 100 --questions 10 --threads 2
    .venv/bin/python benchmarks/compare.py --with-100k --resume       # add 100k (KBLaM and RAG), keep done rows
    kblam bench compare --sizes 10 100                                # the same, via the CLI

Methods (same backbone, same system prompt, greedy decoding, ``--max-new-tokens`` 24):

* ``kblam``: ``KBLaMModel.generate(mode="kblam")``: knowledge tokens in attention only.
* ``kblam-grounded``: ``mode="grounded"``: KB attention picks 3 triples whose text goes in
  the prompt; the learned null token decides refusals.
* ``icl``: every triple in the prompt (``the {property} of {name} is {value}.`` lines) while
  it fits the context window (8192 for SmolLM2); ``fits: false`` beyond.
* ``rag``: a LangChain chain: ``KBLaMSentenceEmbeddings`` (the same MiniLM) +
  ``InMemoryVectorStore`` retriever (top ``--rag-k`` = 3 fact lines) -> prompt ->
  ``KBLaMLLM(kb=None)`` (the plain backbone) -> ``StrOutputParser``.

KBs: ``synthetic`` (``SyntheticKBGenerator(split="validation")``: a KB of exactly N
triples, questions 75% answerable / 25% unanswerable) at each ``--sizes``; ``demo``
(the triples spaCy extracts from ``kblam_integrations/data/demo_corpus.txt`` with the
hand-written questions below).

Metrics per (dataset, method, KB size): ``ttft_s`` (median time to the first generated
token, from the call; includes retrieval/encoding of the question), ``tokens_per_s``
(median decoding rate after the first token), ``peak_rss_mb`` (process peak RSS during
the method, reset before it), ``prep_s`` (one-time KB preparation: encoding the knowledge
tokens / embedding and indexing / serialising), ``answer_accuracy`` (answerable
questions whose normalised answer contains the normalised value, not refused),
``retrieval_accuracy`` (KBLaM: the asked triple has the top attention score;
RAG: it is among the retrieved top-k), refusal precision/recall over unanswerable
questions (an answer is a refusal if it contains "cannot find", "sorry", "don't know"...;
for ``kblam-grounded`` the null-token decision).

Writes ``docs/benchmarks/compare.json`` (after every row, so ``--resume`` can continue),
``compare.md`` and the plots ``compare_cost.png`` / ``compare_accuracy.png``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

DEFAULT_SIZES = [10, 100, 1000, 10_000]
DEFAULT_OUT = C.DOCS_DIR / "compare.json"
METHODS = ("kblam", "kblam-grounded", "icl", "rag")
REFUSAL_MARKERS = ("cannot find", "can't find", "could not find", "couldn't find", "not in the knowledge base",
                   "sorry", "don't know", "do not know", "no information", "not available", "unable to find")
MIX = {"simple": 0.75, "unanswerable": 0.25}

# (question, expected value or None when the demo KB does not hold the answer)
DEMO_QUESTIONS = [
    ("Who founded Veltrano Dynamics?", "Marisol Okonkwo"),
    ("Where is Veltrano Dynamics headquartered?", "Port Alvessa"),
    ("Who is the chief executive officer of Veltrano Dynamics?", "Tobias Renner"),
    ("Where is Quillmark Labs based?", "Nerovia"),
    ("Who founded Quillmark Labs?", "Idris Halvorsen"),
    ("How much does the Quillmark X2 cost?", "420"),
    ("Who is the director of the Harlow Institute?", "Amara Velasquez"),
    ("When was the Harlow Institute established?", "1987"),
    ("What does the Harlow Institute study?", "coral reef ecology"),
    ("Where was Marie Curie born?", "Warsaw"),
    ("Who founded the Harlow Institute?", None),
    ("Who is the director of Quillmark Labs?", None),
    ("What is the population of Port Alvessa?", None),
    ("When was Nerovia founded?", None),
]

COLUMNS = [("dataset", "KB"), ("method", "method"), ("kb_size", "KB size"), ("ttft_s", "TTFT (s)"),
           ("tokens_per_s", "tokens/s"), ("peak_rss_mb", "peak RSS (MB)"), ("prep_s", "prep (s)"),
           ("answer_accuracy", "answer acc."), ("retrieval_accuracy", "retrieval acc."),
           ("refusal_precision", "refusal P"), ("refusal_recall", "refusal R"), ("n_questions", "questions")]


# ------------------------------------------------------------------------------ data
def normalise(text: str) -> str:
    from kblam_integrations.training.evaluate import normalise as _n

    return _n(text)


def is_refusal(answer: str) -> bool:
    low = answer.lower().replace("\u2019", "'")
    return any(m in low for m in REFUSAL_MARKERS)


def synthetic_case(size: int, n_questions: int, seed: int = 0) -> tuple[list, list[dict]]:
    """A synthetic validation KB of exactly ``size`` triples and questions about it."""
    from kblam_integrations.training.synthetic import SyntheticKBGenerator

    gen = SyntheticKBGenerator(split="validation", seed=seed)
    kb: list = []
    while len(kb) < size:
        kb.extend(gen.make_kb(max(1, math.ceil((size - len(kb)) / 3.5))))
    kb = kb[:size]
    index = {(t.name, t.property): i for i, t in enumerate(kb)}
    questions = []
    for ex in gen.make_questions(kb, n_questions, mix=MIX):
        if ex.kind == "unanswerable":
            questions.append({"q": ex.question, "answer": None, "target": None})
        else:
            t = ex.triples[0]
            questions.append({"q": ex.question, "answer": t.value, "target": index[(t.name, t.property)]})
    return kb, questions


def demo_case(spacy_model: str | None = None) -> tuple[list, list[dict]]:
    """The spaCy-extracted demo-corpus KB and the hand-written questions."""
    from kblam_integrations.demo import corpus_paragraphs, extract_kb

    kb = list(extract_kb(corpus_paragraphs(), spacy_model))
    questions = []
    for q, value in DEMO_QUESTIONS:
        target = None
        if value is not None:
            hits = [i for i, t in enumerate(kb) if normalise(value) in normalise(t.value)
                    and normalise(t.name) in normalise(q)]
            target = hits[0] if hits else None
        questions.append({"q": q, "answer": value, "target": target})
    return kb, questions


# --------------------------------------------------------------------------- timing
class TimingStreamer:
    """A ``generate()`` streamer that only records when tokens arrive."""

    def __init__(self) -> None:
        self.prompt_seen = False
        self.times: list[float] = []
        self.end_time: float | None = None

    def put(self, value) -> None:  # noqa: ANN001 - a tensor of token ids
        if not self.prompt_seen:  # HF passes the prompt first
            self.prompt_seen = True
            return
        now = time.perf_counter()
        self.times.extend([now] * max(1, int(getattr(value, "numel", lambda: 1)())))

    def end(self) -> None:
        self.end_time = time.perf_counter()


def _timing(t0: float, times: list[float], end: float) -> tuple[float, float | None]:
    ttft = (times[0] if times else end) - t0
    rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else None
    return ttft, rate


# --------------------------------------------------------------------------- methods
def _ask_kblam(model, tokens, mode: str, max_new_tokens: int):
    def ask(q: str) -> tuple[str, bool, float, float | None]:
        streamer = TimingStreamer()
        t0 = time.perf_counter()
        res = model.generate(q, kb=tokens, mode=mode, max_new_tokens=max_new_tokens, streamer=streamer)
        end = streamer.end_time or time.perf_counter()
        ttft, rate = _timing(t0, streamer.times, end)
        if mode == "grounded":  # refusal = the null token outweighed every triple (no generation)
            refused = res.completion_tokens == 0 and res.text == model.config.refusal
        else:
            refused = is_refusal(res.text)
        return res.text, refused, ttft, rate
    return ask


def _prepare_kblam(model, kb, questions, mode: str, max_new_tokens: int):
    t0 = time.perf_counter()
    tokens = model.encode_kb(kb)
    prep = time.perf_counter() - t0
    answerable = [q for q in questions if q["target"] is not None]
    retrieval = None
    if answerable:
        scores, _null = model.retrieve_batch([q["q"] for q in answerable], tokens)
        retrieval = [int(scores[j].argmax()) == q["target"] for j, q in enumerate(answerable)]
    return prep, _ask_kblam(model, tokens, mode, max_new_tokens), retrieval, {}


def _prepare_icl(model, kb, questions, max_new_tokens: int):
    t0 = time.perf_counter()
    prompts = [C.icl_prompt(kb, q["q"]) for q in questions]
    prep = time.perf_counter() - t0
    longest = max(int(model.prompt_ids(p).shape[1]) for p in prompts)
    extra = {"prompt_tokens": longest}
    if longest + max_new_tokens > C.context_limit(model):
        return prep, None, None, dict(extra, fits=False, note="does not fit in the context window")
    by_q = dict(zip((q["q"] for q in questions), prompts))

    def ask(q: str):
        streamer = TimingStreamer()
        t0 = time.perf_counter()
        res = model.generate(by_q[q], kb=None, max_new_tokens=max_new_tokens, streamer=streamer)
        ttft, rate = _timing(t0, streamer.times, streamer.end_time or time.perf_counter())
        return res.text, is_refusal(res.text), ttft, rate
    return prep, ask, None, extra


def _prepare_rag(model, kb, questions, max_new_tokens: int, k: int):
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.runnables import RunnableLambda, RunnablePassthrough
    from langchain_core.vectorstores import InMemoryVectorStore

    from kblam_integrations.integrations.langchain import KBLaMLLM, KBLaMSentenceEmbeddings

    embeddings = KBLaMSentenceEmbeddings(model.config.encoder)
    embeddings.embed_query("warm-up")  # model load is not KB preparation
    t0 = time.perf_counter()
    store = InMemoryVectorStore(embeddings)
    store.add_texts([C.fact_line(t) for t in kb], metadatas=[{"i": i} for i in range(len(kb))])
    prep = time.perf_counter() - t0
    retriever = store.as_retriever(search_kwargs={"k": k})
    captured: dict = {}

    def join(docs) -> str:  # noqa: ANN001
        captured["hits"] = [d.metadata["i"] for d in docs]
        return "\n".join(d.page_content for d in docs)

    llm = KBLaMLLM(kb=None, kblam_model=model, max_new_tokens=max_new_tokens)
    prompt = ChatPromptTemplate.from_messages([("human", "Facts:\n{context}\n\nQuestion: {question}")])
    chain = {"context": retriever | RunnableLambda(join), "question": RunnablePassthrough()} | prompt | llm \
        | StrOutputParser()
    targets = {q["q"]: q["target"] for q in questions}
    hits: list[bool] = []

    def ask(q: str):
        times, parts = [], []
        t0 = time.perf_counter()
        for chunk in chain.stream(q):
            if chunk:
                times.append(time.perf_counter())
                parts.append(chunk)
        end = time.perf_counter()
        text = "".join(parts)
        if targets[q] is not None:
            hits.append(targets[q] in captured.get("hits", []))
        n_tok = len(model.tokenizer.encode(text, add_special_tokens=False)) if text else 0
        ttft = (times[0] if times else end) - t0
        rate = (n_tok - 1) / (end - times[0]) if n_tok > 1 and times and end > times[0] else None
        return text.strip(), is_refusal(text), ttft, rate
    return prep, ask, hits, {}


def run_method(model, method: str, kb: list, questions: list[dict], *, max_new_tokens: int = 24,
               rag_k: int = 3) -> dict:
    """One row: ``method`` on ``kb`` with ``questions``."""
    import gc

    import torch

    gc.collect()
    C.reset_peak()
    row: dict = {"method": method, "kb_size": len(kb), "n_questions": len(questions),
                 "rss_before_mb": C.rss_mb(), "threads": torch.get_num_threads(), "fits": True}
    if method in ("kblam", "kblam-grounded"):
        prep, ask, retrieval, extra = _prepare_kblam(model, kb, questions, "grounded" if method != "kblam" else "kblam",
                                                     max_new_tokens)
    elif method == "icl":
        prep, ask, retrieval, extra = _prepare_icl(model, kb, questions, max_new_tokens)
    elif method == "rag":
        prep, ask, retrieval, extra = _prepare_rag(model, kb, questions, max_new_tokens, rag_k)
    else:
        raise ValueError(f"unknown method {method!r}")
    row.update(prep_s=prep, **extra)
    if ask is None:
        row.update(ttft_s=None, tokens_per_s=None, answer_accuracy=None, retrieval_accuracy=None,
                   refusal_precision=None, refusal_recall=None, peak_rss_mb=C.peak_rss_mb())
        return row
    ttfts, rates, samples = [], [], []
    correct = answerable = tp = fp = fn = 0
    with torch.no_grad():
        for q in questions:
            text, refused, ttft, rate = ask(q["q"])
            ttfts.append(ttft)
            if rate is not None:
                rates.append(rate)
            if q["answer"] is not None:
                answerable += 1
                correct += (not refused) and normalise(q["answer"]) in normalise(text)
                fp += refused
            else:
                tp += refused
                fn += not refused
            if len(samples) < 4:
                samples.append({"q": q["q"], "expected": q["answer"], "answer": text, "refused": refused})
    retrieval_list = retrieval if retrieval is not None else None
    row.update(
        ttft_s=statistics.median(ttfts) if ttfts else None,
        tokens_per_s=statistics.median(rates) if rates else None,
        peak_rss_mb=C.peak_rss_mb(),
        answer_accuracy=correct / answerable if answerable else None,
        retrieval_accuracy=(sum(retrieval_list) / len(retrieval_list)) if retrieval_list else None,
        refusal_precision=tp / (tp + fp) if tp + fp else None,
        refusal_recall=tp / (tp + fn) if tp + fn else None,
        samples=samples,
    )
    return row


# ------------------------------------------------------------------------ reporting
def write_plots(rows: list[dict], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    syn = [r for r in rows if r.get("dataset") == "synthetic"]
    methods = [m for m in METHODS if any(r["method"] == m for r in syn)]
    if not syn:
        return []
    paths = []
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, key, label in zip(axes, ("ttft_s", "peak_rss_mb", "prep_s"),
                              ("time to first token (s)", "peak RSS (MB)", "KB preparation (s)")):
        for m in methods:
            pts = sorted((r["kb_size"], r[key]) for r in syn if r["method"] == m and r.get(key))
            if pts:
                ax.plot(*zip(*pts), marker="o", label=m)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("KB size (triples)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend()
    fig.suptitle("Cost vs. KB size (ICL stops where the KB no longer fits the context window)")
    fig.tight_layout()
    paths.append(out_dir / "compare_cost.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, label in zip(axes, ("answer_accuracy", "retrieval_accuracy"), ("answer accuracy", "retrieval accuracy")):
        for m in methods:
            pts = sorted((r["kb_size"], r[key]) for r in syn if r["method"] == m and r.get(key) is not None)
            if pts:
                ax.plot(*zip(*pts), marker="o", label=m)
        ax.set_xscale("log")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("KB size (triples)")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    axes[0].legend()
    fig.suptitle("Accuracy vs. KB size (synthetic validation KB)")
    fig.tight_layout()
    paths.append(out_dir / "compare_accuracy.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def write_markdown(path: Path, rows: list[dict], plots: list[Path], command: str) -> None:
    info = C.machine_info()
    trained = {r.get("trained_weights") for r in rows}
    text = [f"Measured with `{command}` ({info['cpus']} CPUs, {info.get('ram_gib', '?')} GiB RAM, torch "
            f"{info['torch']}, {rows[0].get('threads', '?') if rows else '?'} thread(s)"
            f"{'' if trained == {True} else ', UNTRAINED adapters'}). '–': not applicable, or the KB does not fit "
            "the context window (ICL).\n", C.markdown_table(rows, COLUMNS)]
    for p in plots:
        text.append(f"\n![{p.stem.replace('_', ' ')}]({p.name})\n")
    path.write_text("\n".join(text), encoding="utf-8")


def _key(row: dict) -> tuple:
    return row.get("dataset"), row["method"], row["kb_size"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog="See the module docstring for details.")
    ap.add_argument("--sizes", type=int, nargs="+", default=DEFAULT_SIZES, help="synthetic KB sizes in triples")
    ap.add_argument("--with-100k", action="store_true", help="also 100000 triples (KBLaM and RAG only)")
    ap.add_argument("--questions", type=int, default=20, help="questions per KB size")
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    ap.add_argument("--datasets", nargs="+", choices=["synthetic", "demo"], default=["synthetic", "demo"])
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--rag-k", type=int, default=3, help="triples the RAG retriever puts in the prompt")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    ap.add_argument("--weights", default=None, help="KBLaM checkpoint (default: shipped, else untrained)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file (compare.md and PNGs go next to it)")
    ap.add_argument("--resume", action="store_true", help="keep the rows already in --out and skip them")
    ap.add_argument("--no-plots", action="store_true")
    args = ap.parse_args(argv)
    if any(s <= 0 for s in args.sizes) or args.questions <= 0:
        ap.error("--sizes and --questions must be positive")
    C.setup_env(args.threads)
    command = " ".join(["python benchmarks/compare.py", *(argv if argv is not None else sys.argv[1:])])

    rows: list[dict] = []
    if args.resume and args.out.is_file():
        import json

        rows = json.loads(args.out.read_text(encoding="utf-8"))
        print(f"resuming: {len(rows)} row(s) already in {args.out}")
    done = {_key(r) for r in rows}

    model, trained = C.load_model(args.weights)
    if not trained:
        print("warning: no trained KBLaM weights found; using an untrained model (accuracies are meaningless)")
    cases: list[tuple[str, int]] = []
    if "synthetic" in args.datasets:
        sizes = sorted(set(args.sizes) | ({100_000} if args.with_100k else set()))
        cases += [("synthetic", s) for s in sizes]
    if "demo" in args.datasets:
        cases.append(("demo", 0))
    for dataset, size in cases:
        if dataset == "synthetic":
            kb, questions = synthetic_case(size, args.questions, seed=args.seed)
        else:
            kb, questions = demo_case()
        icl_failed_below = any(r["method"] == "icl" and r.get("dataset") == dataset and r.get("fits") is False
                               and r["kb_size"] < len(kb) for r in rows)
        for method in args.methods:
            if (dataset, method, len(kb)) in done:
                continue
            if size == 100_000 and method not in ("kblam", "kblam-grounded", "rag"):
                continue
            t0 = time.perf_counter()
            if method == "icl" and icl_failed_below:
                row = {"method": "icl", "kb_size": len(kb), "n_questions": len(questions), "fits": False,
                       "note": "does not fit in the context window", "ttft_s": None, "tokens_per_s": None,
                       "peak_rss_mb": None, "prep_s": None, "answer_accuracy": None, "retrieval_accuracy": None,
                       "refusal_precision": None, "refusal_recall": None}
            else:
                row = run_method(model, method, kb, questions, max_new_tokens=args.max_new_tokens, rag_k=args.rag_k)
            row = {"dataset": dataset, **row, "trained_weights": trained, "seconds": time.perf_counter() - t0}
            rows.append(row)
            done.add(_key(row))
            C.write_json(args.out, rows)
            acc = C.fmt(row.get("answer_accuracy"), 2)
            print(f"  {dataset:9s} {method:15s} {len(kb):>7d} triples: ttft {C.fmt(row.get('ttft_s'))}s, "
                  f"acc {acc}, peak {C.fmt(row.get('peak_rss_mb'), 0)} MB ({row['seconds']:.0f}s)", flush=True)
    rows.sort(key=lambda r: (r.get("dataset") != "synthetic", r["kb_size"], METHODS.index(r["method"])))
    C.write_json(args.out, rows)
    plots = [] if args.no_plots else write_plots(rows, args.out.parent)
    write_markdown(args.out.with_suffix(".md"), rows, plots, command)
    C.print_table(rows, COLUMNS, title="KBLaM vs. ICL vs. RAG")
    print(f"wrote {args.out}, {args.out.with_suffix('.md')}" + "".join(f", {p}" for p in plots))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
