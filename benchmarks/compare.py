"""KBLaM vs. in-context KB (ICL) vs. RAG on one machine, one backbone, one KB: cost and quality.

Usage::

    # the committed run (docs/benchmarks/compare.*): ~45 min on 2 busy cores
    .venv/bin/python benchmarks/compare.py --threads 2
    # small and quick
    .venv/bin/python benchmarks/compare.py --sizes 10 100 --questions 8 --out /tmp/c.json
    # re-measure only the KBLaM rows (e.g. after retraining the adapters), keep the others
    .venv/bin/python benchmarks/compare.py --threads 2 --methods kblam kblam-grounded --merge
    # rebuild compare.md and the PNGs from compare.json without measuring anything
    .venv/bin/python benchmarks/compare.py --report-only
    kblam bench compare --sizes 10 100      # the same script through the CLI

Every method is a LangChain chat-model call on the same ``KBLaMModel`` (same frozen
SmolLM2 backbone, same default system prompt, greedy decoding, ``--max-new-tokens`` 24):

* ``kblam``: ``ChatPromptTemplate | KBLaMLLM(kb=KnowledgeBase, mode="kblam")``: the
  triples are knowledge tokens the backbone attends to; the prompt holds only the question.
* ``kblam-grounded``: the same ``KBLaMLLM`` with ``mode="grounded"``: KB attention picks
  candidates (attention top 5, ordered by key agreement), the first of which goes into the prompt; the refusal classifier (null-token attention, question-key agreement) decides refusals.
* ``icl``: ``KBLaMLLM(kb=None)`` (the plain backbone) with every triple in the prompt
  (``Facts: the {property} of {name} is {value}. ... Question: ...``), while the longest
  prompt plus the answer fits the context window (8192 tokens for SmolLM2); larger KBs
  get a row with ``fits: false`` ("does not fit") and no measurements. With ``--icl-max``
  (default on) one more ICL row is measured at the *largest* synthetic KB that fits.
* ``rag``: a LangChain retrieval chain: ``KBLaMSentenceEmbeddings`` (the same MiniLM
  encoder KBLaM uses) + ``InMemoryVectorStore`` retriever (top ``--rag-k`` = 3 fact
  lines, the same ``the {property} of {name} is {value}.`` text) -> the same prompt as
  ICL -> ``KBLaMLLM(kb=None)``.

KBs: ``synthetic`` (``SyntheticKBGenerator(split="validation")``: a KB of exactly N
triples, ``--questions`` questions about it, 75% answerable / 25% unanswerable) at each
of ``--sizes``; ``real`` (the KB that the spaCy loader ``KBLaMTextLoader`` extracts from
``tests/data/real_corpus.txt``, with the hand-written questions of
``tests/data/real_corpus_questions.json``, 18 answerable / 6 not).

Isolation: every (KB, size, method) runs in a **fresh subprocess** (the two KBLaM modes
share one, so the KB is encoded once): it loads the model, warms it up, builds the KB
triples and questions, records ``base_rss_mb``, resets the kernel's peak-RSS counter
(``/proc/self/clear_refs``), then prepares the KB and answers. ``peak_rss_mb`` is that
process's peak from then on (for ``kblam-grounded``: including the ``kblam`` pass before
it), ``added_rss_mb`` = peak - base: the memory the method needs for the KB.

Metrics: ``ttft_s`` (median, over the questions, of the time from the chain call to the
first streamed text chunk: retrieval, prompt building, prefill and the first token),
``tokens_per_s`` (median decoding rate after the first token, from the chat model's
``usage_metadata``), ``prep_s`` (one-time KB preparation: encoding the knowledge tokens,
embedding + indexing, or serialising the facts), ``answer_accuracy`` (answerable
questions whose normalised answer contains the normalised expected value and is not a
refusal), ``retrieval_accuracy`` (KBLaM: the asked triple is the most attended one in
``response_metadata["kb_attention"]``; RAG: it is among the retrieved top-k),
``refusal_precision`` / ``refusal_recall`` (a refusal is an answer containing "cannot
find", "sorry", "don't know"...; positives are the unanswerable questions).

Writes ``docs/benchmarks/compare.json`` (``{"meta": ..., "rows": [...]}``, saved after
every job so ``--resume`` can continue), ``compare.md`` and ``compare_cost.png`` /
``compare_accuracy.png`` next to it.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

SCRIPT = Path(__file__).resolve()
DEFAULT_SIZES = [10, 100, 1000, 10_000, 100_000]
DEFAULT_OUT = C.DOCS_DIR / "compare.json"
METHODS = ("kblam", "kblam-grounded", "icl", "rag")
KBLAM_METHODS = ("kblam", "kblam-grounded")
DATASETS = ("synthetic", "real")
REAL_CORPUS = C.ROOT / "tests" / "data" / "real_corpus.txt"
REAL_QUESTIONS = C.ROOT / "tests" / "data" / "real_corpus_questions.json"
REFUSAL_MARKERS = ("cannot find", "can't find", "could not find", "couldn't find", "not in the knowledge base",
                   "sorry", "don't know", "do not know", "no information", "not available", "unable to find")
MIX = {"simple": 0.75, "unanswerable": 0.25}
FACTS_PROMPT = "Facts:\n{facts}\n\nQuestion: {question}"
ICL_MAX = "max"  # the size key of the "largest KB that fits" ICL row
DOES_NOT_FIT = "does not fit in the context window"

SCHEMA = ("dataset", "method", "kb_size", "fits", "n_questions", "ttft_s", "tokens_per_s", "peak_rss_mb",
          "added_rss_mb", "base_rss_mb", "prep_s", "answer_accuracy", "retrieval_accuracy", "refusal_precision",
          "refusal_recall")
COLUMNS = [("method", "method"), ("kb_size", "KB size"), ("ttft_s", "TTFT (s)"), ("tokens_per_s", "tokens/s"),
           ("peak_rss_mb", "peak RSS (MB)"), ("added_rss_mb", "added RSS (MB)"), ("prep_s", "KB prep (s)"),
           ("answer_accuracy", "answer acc."), ("retrieval_accuracy", "retrieval acc."),
           ("refusal_precision", "refusal P"), ("refusal_recall", "refusal R"), ("n_questions", "questions"),
           ("prompt_tokens", "prompt tokens")]


# ------------------------------------------------------------------------------ data
def normalise(text: str) -> str:
    from kblam_integrations.training.evaluate import normalise as _n

    return _n(text)


def is_refusal(answer: str) -> bool:
    low = answer.lower().replace("\u2019", "'")
    return any(m in low for m in REFUSAL_MARKERS)


def synthetic_case(size: int, n_questions: int, seed: int = 0) -> tuple[list, list[dict]]:
    """A synthetic validation KB of exactly ``size`` triples and ``n_questions`` questions about it.

    Questions: ``{"q", "answer" (None: unanswerable), "target" (the asked triple's id or None)}``.
    """
    from kblam_integrations.training.synthetic import SyntheticKBGenerator

    gen = SyntheticKBGenerator(split="validation", seed=seed)
    kb: list = []
    while len(kb) < size:
        kb.extend(gen.make_kb(max(1, math.ceil((size - len(kb)) / 3.5))))
    kb = kb[:size]
    questions = []
    for ex in gen.make_questions(kb, n_questions, mix=MIX):
        if ex.kind == "unanswerable":
            questions.append({"q": ex.question, "answer": None, "target": None})
        else:
            t = ex.triples[0]
            questions.append({"q": ex.question, "answer": t.value, "target": t.id})
    return kb, questions


def real_case(corpus: Path = REAL_CORPUS, questions_file: Path = REAL_QUESTIONS,
              spacy_model: str | None = None) -> tuple[list, list[dict]]:
    """The KB ``KBLaMTextLoader`` (spaCy) extracts from a real text corpus, and hand-written questions.

    A question's target is the extracted triple whose value is the expected answer and whose
    name occurs in the question (None when the extractor missed the fact).
    """
    from kblam_integrations.kb.loaders import KBLaMTextLoader

    kb = list(KBLaMTextLoader(Path(corpus), model=spacy_model).load_knowledge_base())
    spec = json.loads(Path(questions_file).read_text(encoding="utf-8"))
    questions = []
    for item in spec["questions"]:
        q, value = item["question"], item["answer"]
        target = None
        if value is not None:
            hits = [t for t in kb if normalise(value) == normalise(t.value) and normalise(t.name) in normalise(q)]
            target = hits[0].id if hits else None
        questions.append({"q": q, "answer": value, "target": target})
    return kb, questions


def make_case(dataset: str, size: int | None, n_questions: int, seed: int) -> tuple[list, list[dict]]:
    if dataset == "synthetic":
        return synthetic_case(int(size), n_questions, seed=seed)
    if dataset == "real":
        return real_case()
    raise ValueError(f"unknown dataset {dataset!r}")


# ------------------------------------------------------------------------- prompting
def fact_text(triples) -> str:
    return "\n".join(C.fact_line(t) for t in triples)


def facts_prompt():
    from langchain_core.prompts import ChatPromptTemplate

    return ChatPromptTemplate.from_messages([("human", FACTS_PROMPT)])


def prompt_tokens(model, kb: list, questions: list[dict]) -> int:
    """Tokens of the longest chat-formatted ICL prompt (system prompt and template included)."""
    facts = fact_text(kb)
    longest = max(questions, key=lambda q: len(model.tokenizer.encode(q["q"], add_special_tokens=False)))
    return int(model.prompt_ids(FACTS_PROMPT.format(facts=facts, question=longest["q"])).shape[1])


def icl_fits(model, kb: list, questions: list[dict], max_new_tokens: int) -> tuple[bool, int]:
    n = prompt_tokens(model, kb, questions)
    return n + max_new_tokens <= C.context_limit(model), n


def largest_fitting_synthetic(model, n_questions: int, seed: int, max_new_tokens: int,
                              upper: int = 100_000) -> int:
    """The largest synthetic KB size whose ICL prompts (with ``n_questions`` questions) fit the context."""
    def fits(n: int) -> bool:
        kb, qs = synthetic_case(n, n_questions, seed=seed)
        return icl_fits(model, kb, qs, max_new_tokens)[0]

    lo, hi = 0, 1  # fits(lo) (or lo == 0), not fits(hi) once found
    while hi <= upper and fits(hi):
        lo, hi = hi, hi * 2
    hi = min(hi, upper + 1)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo


# --------------------------------------------------------------------------- methods
def _stream_answer(chain, inputs: Any) -> dict:
    """Stream one answer through ``chain`` (ending in a chat model); time it."""
    parts: list[str] = []
    first = None
    meta: dict = {}
    usage: dict = {}
    t0 = time.perf_counter()
    for chunk in chain.stream(inputs):
        content = getattr(chunk, "content", chunk)
        if content:
            if first is None:
                first = time.perf_counter()
            parts.append(content if isinstance(content, str) else str(content))
        if getattr(chunk, "response_metadata", None):
            meta = dict(chunk.response_metadata)
        if getattr(chunk, "usage_metadata", None):
            usage = dict(chunk.usage_metadata)
    end = time.perf_counter()
    n_out = int(usage.get("output_tokens") or 0)
    rate = (n_out - 1) / (end - first) if first is not None and n_out > 1 and end > first else None
    return {"text": "".join(parts).strip(), "ttft": (first if first is not None else end) - t0, "rate": rate,
            "meta": meta, "output_tokens": n_out}


class _KBLaMPrep:
    """The KBLaM methods of one job share one KnowledgeBase and one encoded KB."""

    def __init__(self, model, kb: list):
        from kblam_integrations.integrations.langchain import KBLaMLLM
        from kblam_integrations.kb.knowledge_base import KnowledgeBase

        self.kb = KnowledgeBase(kb)
        probe = KBLaMLLM(kb=self.kb, kblam_model=model)
        t0 = time.perf_counter()
        self.manager = probe.kb_manager  # binds a KBManager to the model...
        self.manager.snapshot()  # ...and encodes every triple into knowledge tokens
        self.prep_s = time.perf_counter() - t0


def _kblam_asker(model, prep: _KBLaMPrep, method: str, max_new_tokens: int):
    from langchain_core.prompts import ChatPromptTemplate

    from kblam_integrations.integrations.langchain import KBLaMLLM

    llm = KBLaMLLM(kb=prep.manager, kblam_model=model, mode="grounded" if method == "kblam-grounded" else "kblam",
                   max_new_tokens=max_new_tokens, top_k_attention=1)
    chain = ChatPromptTemplate.from_messages([("human", "{question}")]) | llm

    def ask(q: dict) -> dict:
        res = _stream_answer(chain, {"question": q["q"]})
        top = res["meta"].get("kb_attention") or []
        res["hit"] = bool(top) and top[0]["triple_id"] == q["target"]
        return res
    return ask


def _icl_asker(model, kb: list, max_new_tokens: int):
    from kblam_integrations.integrations.langchain import KBLaMLLM

    t0 = time.perf_counter()
    facts = fact_text(kb)
    prep = time.perf_counter() - t0
    chain = facts_prompt() | KBLaMLLM(kb=None, kblam_model=model, max_new_tokens=max_new_tokens)

    def ask(q: dict) -> dict:
        return _stream_answer(chain, {"facts": facts, "question": q["q"]})
    return prep, ask


def _rag_asker(model, kb: list, max_new_tokens: int, k: int, encoder: str | None = None):
    from langchain_core.runnables import RunnableLambda, RunnablePassthrough
    from langchain_core.vectorstores import InMemoryVectorStore

    from kblam_integrations.integrations.langchain import KBLaMLLM, KBLaMSentenceEmbeddings

    embeddings = KBLaMSentenceEmbeddings(encoder if encoder is not None else model.config.encoder, batch_size=128)
    embeddings.embed_query("warm-up")  # loading the encoder is not KB preparation
    t0 = time.perf_counter()
    store = InMemoryVectorStore(embeddings)
    store.add_texts([C.fact_line(t) for t in kb], metadatas=[{"triple_id": t.id} for t in kb])
    prep = time.perf_counter() - t0
    retriever = store.as_retriever(search_kwargs={"k": k})
    captured: dict = {}

    def join(docs) -> str:  # noqa: ANN001 - LangChain documents
        captured["hits"] = [d.metadata["triple_id"] for d in docs]
        return "\n".join(d.page_content for d in docs)

    chain = ({"facts": retriever | RunnableLambda(join), "question": RunnablePassthrough()} | facts_prompt()
             | KBLaMLLM(kb=None, kblam_model=model, max_new_tokens=max_new_tokens))

    def ask(q: dict) -> dict:
        captured.clear()
        res = _stream_answer(chain, q["q"])
        res["hit"] = q["target"] in captured.get("hits", [])
        return res
    return prep, ask


def _score(row: dict, questions: list[dict], answers: list[dict], retrieval: bool) -> None:
    correct = answerable = tp = fp = fn = 0
    hits = []
    for q, a in zip(questions, answers):
        refused = is_refusal(a["text"])
        if q["answer"] is not None:
            answerable += 1
            correct += (not refused) and normalise(q["answer"]) in normalise(a["text"])
            fp += refused
            if retrieval and q["target"] is not None:
                hits.append(bool(a.get("hit")))
        else:
            tp += refused
            fn += not refused
    rates = [a["rate"] for a in answers if a["rate"] is not None]
    row.update(
        ttft_s=statistics.median(a["ttft"] for a in answers) if answers else None,
        ttft_p90_s=sorted(a["ttft"] for a in answers)[int(0.9 * (len(answers) - 1))] if answers else None,
        tokens_per_s=statistics.median(rates) if rates else None,
        answer_accuracy=correct / answerable if answerable else None,
        retrieval_accuracy=sum(hits) / len(hits) if hits else None,
        refusal_precision=tp / (tp + fp) if tp + fp else None,
        refusal_recall=tp / (tp + fn) if tp + fn else None,
        n_answerable=answerable,
        samples=[{"q": q["q"], "expected": q["answer"], "answer": a["text"]} for q, a in zip(questions, answers)][:6],
    )


def run_methods(model, methods: list[str], kb: list, questions: list[dict], *, max_new_tokens: int = 24,
                rag_k: int = 3, rag_encoder: str | None = None, reset_peak: bool = True) -> list[dict]:
    """Measure ``methods`` on ``kb`` in this process; one row per method (the KBLaM modes share the encoding)."""
    import gc

    import torch

    gc.collect()
    base = C.rss_mb()
    if reset_peak:
        C.reset_peak()
    rows = []
    kblam_prep = None
    for method in methods:
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}")
        row: dict = {"method": method, "kb_size": len(kb), "n_questions": len(questions), "fits": True,
                     "base_rss_mb": base, "threads": torch.get_num_threads()}
        t_method = time.perf_counter()
        if method in KBLAM_METHODS:
            if kblam_prep is None:
                kblam_prep = _KBLaMPrep(model, kb)
                row["prep_s"] = kblam_prep.prep_s
            else:
                row.update(prep_s=kblam_prep.prep_s, prep_shared_with="kblam")
            ask = _kblam_asker(model, kblam_prep, method, max_new_tokens)
            retrieval = True
        elif method == "icl":
            fits, n_tokens = icl_fits(model, kb, questions, max_new_tokens)
            row.update(prompt_tokens=n_tokens, context_limit=C.context_limit(model))
            if not fits:
                row.update(fits=False, note=DOES_NOT_FIT, ttft_s=None, tokens_per_s=None, prep_s=None,
                           answer_accuracy=None, retrieval_accuracy=None, refusal_precision=None,
                           refusal_recall=None, peak_rss_mb=None, added_rss_mb=None)
                rows.append(row)
                continue
            row["prep_s"], ask = _icl_asker(model, kb, max_new_tokens)
            retrieval = False
        else:
            row["prep_s"], ask = _rag_asker(model, kb, max_new_tokens, rag_k, rag_encoder)
            row["rag_k"] = rag_k
            retrieval = True
        with torch.no_grad():
            answers = [ask(q) for q in questions]
        _score(row, questions, answers, retrieval)
        peak = C.peak_rss_mb()
        row.update(peak_rss_mb=peak, added_rss_mb=peak - base, method_seconds=time.perf_counter() - t_method)
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- jobs
def job_rows(job: dict) -> list[dict]:
    """Run one job (dataset, size, methods) in this process; returns its rows."""
    C.setup_env(job.get("threads"))
    t0 = time.perf_counter()
    model, trained = C.load_model(job.get("weights"))
    import torch

    with torch.no_grad():  # warm-up, so that lazy initialisation is not measured
        model.generate("Hello", max_new_tokens=2)
    model_rss = C.rss_mb()
    load_s = time.perf_counter() - t0
    size = job["size"]
    extra: dict = {}
    if size == ICL_MAX:
        size = largest_fitting_synthetic(model, job["questions"], job["seed"], job["max_new_tokens"])
        extra = {"icl_max": True, "note": "the largest synthetic KB whose prompts fit the context window"}
    kb, questions = make_case(job["dataset"], size, job["questions"], job["seed"])
    rows = run_methods(model, job["methods"], kb, questions, max_new_tokens=job["max_new_tokens"],
                       rag_k=job["rag_k"], rag_encoder=job.get("rag_encoder"))
    for row in rows:
        row.update(dataset=job["dataset"], model_rss_mb=model_rss, load_s=load_s, trained_weights=trained,
                   unresolved_targets=sum(q["answer"] is not None and q["target"] is None for q in questions),
                   **extra)
    return rows


def run_job(job: dict, isolate: bool = True, retries: int = 1) -> list[dict]:
    if not isolate:
        return job_rows(job)
    for attempt in range(retries + 1):
        try:
            return C.run_subprocess(SCRIPT, ["--worker", json.dumps(job)])["rows"]
        except RuntimeError as exc:
            if attempt == retries:
                raise
            print(f"  job failed, retrying in 20 s: {str(exc).splitlines()[-1]}", flush=True)
            time.sleep(20)
    raise AssertionError("unreachable")


def plan_jobs(args) -> list[dict]:
    common = {"questions": args.questions, "seed": args.seed, "max_new_tokens": args.max_new_tokens,
              "rag_k": args.rag_k, "threads": args.threads, "weights": args.weights}
    jobs = []
    groups = [[m for m in args.methods if m in KBLAM_METHODS], ["icl"] if "icl" in args.methods else [],
              ["rag"] if "rag" in args.methods else []]
    for dataset in args.datasets:
        sizes = sorted(args.sizes) if dataset == "synthetic" else [None]
        for size in sizes:
            for methods in groups:
                if methods:
                    jobs.append({**common, "dataset": dataset, "size": size, "methods": methods})
            if dataset == "synthetic" and "icl" in args.methods and args.icl_max and size == 100:
                jobs.append({**common, "dataset": dataset, "size": ICL_MAX, "methods": ["icl"],
                             "questions": args.icl_max_questions})
        if dataset == "synthetic" and "icl" in args.methods and args.icl_max and 100 not in sizes:
            jobs.append({**common, "dataset": dataset, "size": ICL_MAX, "methods": ["icl"],
                         "questions": args.icl_max_questions})
    # cheapest first: the real-text KB (tens of triples) with the small sizes, the ICL row at the
    # context limit after 100 triples, 100k last (so an interrupted run can --resume)
    def order(job: dict) -> float:
        size = job["size"]
        return 50 if size is None else 150 if size == ICL_MAX else size
    return sorted(jobs, key=order)


def row_key(row: dict) -> tuple:
    size = ICL_MAX if row.get("icl_max") else (None if row.get("dataset") == "real" else row["kb_size"])
    return row.get("dataset"), row["method"], size


def job_keys(job: dict) -> list[tuple]:
    return [(job["dataset"], m, job["size"]) for m in job["methods"]]


def _no_fit_row(job: dict, smaller: dict) -> dict:
    """ICL at a size above one that already does not fit: no need to load anything."""
    return {"dataset": job["dataset"], "method": "icl", "kb_size": job["size"], "n_questions": job["questions"],
            "fits": False, "note": f"{DOES_NOT_FIT} (already {smaller['kb_size']} triples need "
                                   f"{smaller['prompt_tokens']} tokens)",
            "ttft_s": None, "tokens_per_s": None, "prep_s": None, "peak_rss_mb": None, "added_rss_mb": None,
            "base_rss_mb": None, "answer_accuracy": None, "retrieval_accuracy": None, "refusal_precision": None,
            "refusal_recall": None, "prompt_tokens": None, "context_limit": smaller.get("context_limit")}


# ------------------------------------------------------------------------ reporting
def _sort_key(row: dict) -> tuple:
    return (row.get("dataset") != "synthetic", row["kb_size"], METHODS.index(row["method"]))


def load_results(path: Path) -> dict:
    if not Path(path).is_file():
        return {"meta": {}, "rows": []}
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if isinstance(data, list):  # the first format: a bare list of rows
        data = {"meta": {}, "rows": data}
    data.setdefault("meta", {})
    data.setdefault("rows", [])
    for row in data["rows"]:  # every row has every metric key (None: not measured / does not fit)
        for key in SCHEMA:
            row.setdefault(key, None)
    return data


def _get(rows: list[dict], dataset: str, method: str, size: Any = None, icl_max: bool = False) -> dict | None:
    for r in rows:
        if r.get("dataset") == dataset and r["method"] == method and bool(r.get("icl_max")) == icl_max \
                and (size is None or r["kb_size"] == size):
            return r
    return None


def findings(rows: list[dict]) -> list[str]:
    """Plain-language checks of the issue's bar and where KBLaM wins or loses, from the rows."""
    out = []
    syn = [r for r in rows if r.get("dataset") == "synthetic"]
    icl_fit = [r for r in syn if r["method"] == "icl" and r.get("fits") and r.get("ttft_s")]
    k1000 = _get(syn, "synthetic", "kblam", 1000)
    if icl_fit and k1000 and k1000.get("ttft_s"):
        big = max(icl_fit, key=lambda r: r["kb_size"])
        ratio = big["ttft_s"] / k1000["ttft_s"]
        out.append(f"**Time to first token**: KBLaM at 1,000 triples {k1000['ttft_s']:.3f} s vs. ICL at its largest "
                   f"fitting KB ({big['kb_size']} triples, {big.get('prompt_tokens')} prompt tokens) "
                   f"{big['ttft_s']:.3f} s: {ratio:.1f}x lower (target >= 5x: {'PASS' if ratio >= 5 else 'FAIL'}).")
    icl_no = [r for r in syn if r["method"] == "icl" and r.get("fits") is False]
    if icl_no:
        out.append(f"**ICL does not fit** SmolLM2's {icl_no[0].get('context_limit') or 8192}-token context from "
                   f"{min(r['kb_size'] for r in icl_no):,} triples on.")
    kb_rows = sorted((r for r in syn if r["method"] == "kblam" and r.get("added_rss_mb") is not None),
                     key=lambda r: r["kb_size"])
    if len(kb_rows) >= 2:
        pts = ", ".join(f"{r['kb_size']:,}: +{r['added_rss_mb']:.0f} MB" for r in kb_rows)
        a, b = kb_rows[-2], kb_rows[-1]
        if a["added_rss_mb"] > 0:
            growth = b["added_rss_mb"] / a["added_rss_mb"]
            out.append(f"**KBLaM memory** above the loaded model (peak - base RSS) by KB size: {pts}. "
                       f"{a['kb_size']:,} -> {b['kb_size']:,} triples ({b['kb_size'] / a['kb_size']:.0f}x) "
                       f"adds {growth:.1f}x the memory ({'linear or better' if growth <= 1.25 * b['kb_size'] / a['kb_size'] else 'worse than linear'}); "
                       f"peak RSS at {b['kb_size']:,} triples: {b['peak_rss_mb']:,.0f} MB.")
    both = [r["kb_size"] for r in syn if r["method"] == "kblam" and r.get("ttft_s")
            and (_get(syn, "synthetic", "rag", r["kb_size"]) or {}).get("ttft_s")]
    for size in sorted(set(both))[-2:]:
        k, g = _get(syn, "synthetic", "kblam", size), _get(syn, "synthetic", "rag", size)
        out.append(f"**Cost against RAG at {size:,} triples**: time to first token KBLaM {k['ttft_s']:.2f} s vs. RAG "
                   f"{g['ttft_s']:.2f} s; decoding {C.fmt(k.get('tokens_per_s'), 1)} vs. "
                   f"{C.fmt(g.get('tokens_per_s'), 1)} tokens/s; memory for the KB +{k['added_rss_mb']:.0f} MB vs. "
                   f"+{g['added_rss_mb']:.0f} MB; one-time preparation {k['prep_s']:.0f} s vs. {g['prep_s']:.0f} s.")
    for size in sorted({r["kb_size"] for r in syn if not r.get("icl_max")}):
        rag = _get(syn, "synthetic", "rag", size)
        ks = [r for m in KBLAM_METHODS if (r := _get(syn, "synthetic", m, size)) is not None
              and r.get("answer_accuracy") is not None]
        if not rag or rag.get("answer_accuracy") is None or not ks:
            continue
        best = max(ks, key=lambda r: r["answer_accuracy"])
        verdict = "KBLaM loses" if best["answer_accuracy"] < rag["answer_accuracy"] else "KBLaM matches or wins"
        icl = _get(syn, "synthetic", "icl", size)
        icl_txt = (f", ICL {icl['answer_accuracy']:.2f}" if icl and icl.get("answer_accuracy") is not None
                   else (", ICL does not fit" if icl and icl.get("fits") is False else ""))
        out.append(f"**Answer accuracy at {size:,} triples**: {verdict}: best KBLaM mode ({best['method']}) "
                   f"{best['answer_accuracy']:.2f} vs. RAG {rag['answer_accuracy']:.2f}{icl_txt} "
                   f"({best['n_answerable']} answerable questions).")
    real = [r for r in rows if r.get("dataset") == "real" and r.get("answer_accuracy") is not None]
    if real:
        txt = ", ".join(f"{r['method']} {r['answer_accuracy']:.2f}" for r in sorted(real, key=_sort_key))
        out.append(f"**Real-text KB** ({real[0]['kb_size']} spaCy-extracted triples): answer accuracy {txt}.")
    return out


def write_plots(rows: list[dict], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    syn = [r for r in rows if r.get("dataset") == "synthetic"]
    if not syn:
        return []
    methods = [m for m in METHODS if any(r["method"] == m for r in syn)]
    styles = {"kblam": "o-", "kblam-grounded": "s--", "icl": "^-", "rag": "D-"}
    colors = {"kblam": "tab:blue", "kblam-grounded": "tab:orange", "icl": "tab:green", "rag": "tab:red"}
    no_fit = [r["kb_size"] for r in syn if r["method"] == "icl" and r.get("fits") is False]
    paths = []

    def series(m: str, key: str) -> list[tuple]:
        return sorted((r["kb_size"], r[key]) for r in syn if r["method"] == m and r.get(key) is not None)

    def mark_no_fit(ax) -> None:  # noqa: ANN001
        if no_fit:
            ax.axvspan(min(no_fit), max(r["kb_size"] for r in syn) * 1.5, color="0.9", zorder=0)
            ax.text(min(no_fit) * 1.1, 0.97, "ICL does not fit", transform=ax.get_xaxis_transform(), va="top",
                    fontsize=8, color="0.35")

    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    for ax, key, label, logy in zip(axes.flat, ("ttft_s", "tokens_per_s", "peak_rss_mb", "prep_s"),
                                    ("time to first token (s)", "decoding tokens/s", "peak RSS (MB)",
                                     "one-time KB preparation (s)"), (True, True, True, True)):
        for m in methods:
            pts = [p for p in series(m, key) if p[1] > 0]
            if pts:
                ax.plot(*zip(*pts), styles.get(m, "o-"), color=colors.get(m), label=m)
        mark_no_fit(ax)
        ax.set_xscale("log")
        if logy:
            ax.set_yscale("log")
        ax.set_xlabel("KB size (triples)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0, 0].legend()
    fig.suptitle("Cost vs. KB size (synthetic validation KB, log-log)")
    fig.tight_layout()
    paths.append(out_dir / "compare_cost.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    for ax, key, label in zip(axes, ("answer_accuracy", "retrieval_accuracy", "refusal_recall"),
                              ("answer accuracy", "retrieval accuracy (KBLaM top-1, RAG top-k)",
                               "refusal recall")):
        for m in methods:
            pts = series(m, key)
            if pts:
                ax.plot(*zip(*pts), styles.get(m, "o-"), color=colors.get(m), label=m)
        mark_no_fit(ax)
        ax.set_xscale("log")
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("KB size (triples)")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    axes[0].legend()
    fig.suptitle("Quality vs. KB size (synthetic validation KB)")
    fig.tight_layout()
    paths.append(out_dir / "compare_accuracy.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    return paths


def write_markdown(path: Path, data: dict, plots: list[Path]) -> None:
    rows = sorted(data["rows"], key=_sort_key)
    meta = data.get("meta", {})
    info = meta.get("machine") or C.machine_info()
    trained = {r.get("trained_weights") for r in rows} - {None}  # None: "does not fit" rows, no model loaded
    text = []
    cmd = meta.get("command", "python benchmarks/compare.py")
    text.append(f"Measured with `{cmd}`" + (f" (total {meta['total_minutes']:.0f} min)" if meta.get("total_minutes")
                                            else "") +
                f" on {info.get('cpus', '?')} CPUs, {info.get('ram_gib', '?')} GiB RAM, torch {info.get('torch', '?')}, "
                f"{rows[0].get('threads', '?') if rows else '?'} torch thread(s)"
                f"{'' if trained <= {True} else ', UNTRAINED adapters (KBLaM accuracies are meaningless)'}.")
    updates = meta.get("updates") or []
    for u in updates:
        mins = f", {u['minutes']:.0f} min" if u.get("minutes") else ""
        text.append(f"Rows of {', '.join(map(str, u['methods']))} (re-)measured separately with `{u['command']}` "
                    f"({u['date']}{mins}) and merged in.")
    if meta.get("weights_note"):
        text.append(meta["weights_note"])
    text.append("")
    found = findings(rows)
    if found:
        text.append("**Findings (computed from the rows below):**\n")
        text.extend(f"- {f}" for f in found)
        text.append("")
    syn = [r for r in rows if r.get("dataset") == "synthetic"]
    if syn:
        n_q = sorted({r["n_questions"] for r in syn if not r.get("icl_max")})
        text.append(f"**Synthetic validation KB** ({'/'.join(map(str, n_q))} questions per size, 75% answerable; "
                    "the ICL row marked * is the largest KB that fits the context window, with fewer questions). "
                    "'–': not applicable, or the KB does not fit the context window (ICL).\n")
        shown = [dict(r, kb_size=f"{r['kb_size']}*" if r.get("icl_max") else r["kb_size"]) for r in syn]
        text.append(C.markdown_table(shown, COLUMNS))
    real = [r for r in rows if r.get("dataset") == "real"]
    if real:
        unresolved = real[0].get("unresolved_targets", 0)
        text.append(f"**Real-text KB**: the {real[0]['kb_size']} triples `KBLaMTextLoader` (spaCy) extracts from "
                    f"`tests/data/real_corpus.txt`, {real[0]['n_questions']} hand-written questions "
                    f"({real[0].get('n_answerable', '?')} answerable"
                    + (f", {unresolved} of them about a fact the extractor missed" if unresolved else "") + ").\n")
        text.append(C.markdown_table(real, COLUMNS))
    for p in plots:
        text.append(f"\n![{p.stem.replace('_', ' ')}]({p.name})\n")
    Path(path).write_text("\n".join(text), encoding="utf-8")


def report(out: Path, plots: bool = True) -> None:
    data = load_results(out)
    data["rows"].sort(key=_sort_key)
    paths = write_plots(data["rows"], out.parent) if plots else []
    write_markdown(out.with_suffix(".md"), data, paths)
    C.print_table(sorted(data["rows"], key=_sort_key), [("dataset", "KB")] + COLUMNS[:-1],
                  title="KBLaM vs. ICL vs. RAG")
    for f in findings(data["rows"]):
        print("-", f.replace("**", ""))
    print(f"wrote {out.with_suffix('.md')}" + "".join(f", {p}" for p in paths))


# ------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog="See the module docstring for details.",
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=DEFAULT_SIZES, help="synthetic KB sizes in triples")
    ap.add_argument("--questions", type=int, default=20, help="questions per synthetic KB size")
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    ap.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    ap.add_argument("--icl-max", action=argparse.BooleanOptionalAction, default=True,
                    help="also measure ICL at the largest synthetic KB that fits the context window")
    ap.add_argument("--icl-max-questions", type=int, default=6, help="questions for that (slow) ICL row")
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--rag-k", type=int, default=3, help="triples the RAG retriever puts in the prompt")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    ap.add_argument("--weights", default=None, help="KBLaM checkpoint (default: shipped, else untrained)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file (compare.md and PNGs go next to it)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="keep the rows in --out and skip jobs already done")
    mode.add_argument("--merge", action="store_true",
                      help="keep the rows in --out, re-measure the selected methods/sizes and replace their rows")
    mode.add_argument("--report-only", action="store_true", help="only rebuild compare.md and the plots from --out")
    ap.add_argument("--merge-from", type=Path, nargs="+", default=[],
                    help="with --report-only: first replace rows of --out by the rows of these JSON files")
    ap.add_argument("--no-isolate", action="store_true", help="measure in this process (peak RSS then accumulates)")
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        job = json.loads(args.worker)
        C.emit_result({"rows": job_rows(job)})
        return 0
    if args.report_only:
        if args.merge_from:
            data = load_results(args.out)
            for other in map(load_results, args.merge_from):
                keys = {row_key(r) for r in other["rows"]}
                data["rows"] = [r for r in data["rows"] if row_key(r) not in keys] + other["rows"]
                data["meta"].setdefault("updates", []).append(
                    {"command": other["meta"].get("command"), "date": other["meta"].get("started"),
                     "methods": sorted({f"{r['method']} at {r['kb_size']}" for r in other["rows"]}),
                     "minutes": round(other["meta"].get("total_minutes", 0), 1)})
            data["rows"].sort(key=_sort_key)
            C.write_json(args.out, data)
        report(args.out, plots=not args.no_plots)
        return 0
    if any(s <= 0 for s in args.sizes) or args.questions <= 0 or args.icl_max_questions <= 0:
        ap.error("--sizes and --questions must be positive")
    C.setup_env(args.threads)
    command = " ".join(["python benchmarks/compare.py", *argv])
    keep = args.resume or args.merge
    data = load_results(args.out) if keep else {"meta": {}, "rows": []}
    if keep:
        print(f"{'resuming' if args.resume else 'merging'}: {len(data['rows'])} row(s) already in {args.out}")
    if not keep or not data["meta"]:
        data["meta"] = {"command": command, "machine": C.machine_info(), "questions": args.questions,
                        "icl_max_questions": args.icl_max_questions, "max_new_tokens": args.max_new_tokens,
                        "rag_k": args.rag_k, "seed": args.seed, "started": time.strftime("%Y-%m-%d %H:%M")}
    elif args.merge:
        data["meta"].setdefault("updates", []).append(
            {"command": command, "methods": args.methods, "date": time.strftime("%Y-%m-%d %H:%M")})
    done = {row_key(r) for r in data["rows"]}
    t_start = time.perf_counter()
    failed = []
    for job in plan_jobs(args):
        if args.resume and all(k in done for k in job_keys(job)):
            continue
        t0 = time.perf_counter()
        label = f"{job['dataset']:9s} {str(job['size'] or 'corpus'):>7s} {'+'.join(job['methods'])}"
        smaller = [r for r in data["rows"] if r.get("dataset") == job["dataset"] and r["method"] == "icl"
                   and r.get("fits") is False and r.get("prompt_tokens") and job["size"] not in (None, ICL_MAX)
                   and r["kb_size"] < job["size"]]
        try:
            if job["methods"] == ["icl"] and smaller:
                new_rows = [_no_fit_row(job, min(smaller, key=lambda r: r["kb_size"]))]
            else:
                new_rows = run_job(job, isolate=not args.no_isolate)
        except Exception as exc:  # noqa: BLE001 - report, keep the other rows, exit non-zero
            failed.append(label)
            print(f"  {label}: FAILED: {str(exc).strip().splitlines()[-1] if str(exc).strip() else exc!r}", flush=True)
            continue
        replaced = set(job_keys(job)) | {row_key(r) for r in new_rows}
        data["rows"] = [r for r in data["rows"] if row_key(r) not in replaced] + new_rows
        done |= replaced
        for r in new_rows:
            r["seconds"] = (time.perf_counter() - t0) / len(new_rows)
        data["meta"]["total_minutes"] = data["meta"].get("total_minutes", 0) + (time.perf_counter() - t0) / 60
        data["rows"].sort(key=_sort_key)
        C.write_json(args.out, data)
        for r in new_rows:
            print(f"  {label}: {r['method']:15s} {r['kb_size']:>7d} triples: ttft {C.fmt(r.get('ttft_s'))} s, "
                  f"acc {C.fmt(r.get('answer_accuracy'), 2)}, peak {C.fmt(r.get('peak_rss_mb'), 0)} MB "
                  f"(+{C.fmt(r.get('added_rss_mb'), 0)}), prep {C.fmt(r.get('prep_s'))} s "
                  f"[{time.perf_counter() - t0:.0f} s]", flush=True)
    print(f"measured in {(time.perf_counter() - t_start) / 60:.1f} min")
    C.write_json(args.out, data)
    report(args.out, plots=not args.no_plots)
    if failed:
        print("FAILED jobs: " + "; ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
