"""KBLaM vs. a strong RAG baseline (and ICL as the cost anchor): one run, one metric, 95% intervals.

Usage::

    # the full comparison (docs/benchmarks/compare.*): every row from this one run
    .venv/bin/python benchmarks/compare.py --threads 2
    # pieces (each invocation is its own run, with its own run_id)
    .venv/bin/python benchmarks/compare.py --threads 2 --sizes 10 100 --max-questions 30 --out /tmp/c.json
    .venv/bin/python benchmarks/compare.py --methods rag-faiss-key-k1 rag-faiss-fact-k3 --sizes 1000 --out /tmp/r.json
    # rebuild compare.md and the plot from compare.json without measuring anything
    .venv/bin/python benchmarks/compare.py --report-only
    kblam bench compare --sizes 10 100      # the same script through the CLI

Methods (one loaded ``KBLaMModel``: frozen SmolLM2-135M-Instruct + all-MiniLM-L6-v2, the
default system prompt, greedy decoding, at most ``--max-new-tokens``):

* ``kblam-grounded``: ``model.generate(q, kb, mode="grounded")``: KB attention picks the
  fact, grounded mode's answer step (:mod:`kblam_integrations.model.grounded_answer`)
  answers from it; the refusal classifier decides refusals.
* ``kblam``: ``model.generate(q, kb, mode="kblam")``: pure mode, whatever it does at run time.
* ``rag-faiss-{key,fact}-k{1,3}``: :class:`kblam_integrations.baselines.rag.FaissRAG`:
  exact cosine search (faiss ``IndexFlatIP``, normalised MiniLM vectors from the model's
  own encoder) over the triples' key texts or fact sentences, the top k facts answered by
  *the same function grounded mode uses*, refusal when the best cosine is below a
  threshold calibrated (maximum refusal F1) on ``tests/data/synthetic_dev_calibration.json``
  at KB 100, the file and size KBLaM's threshold was calibrated on.
* ``icl``: every triple of the KB as a fact sentence in the prompt (grounded mode's prompt
  layout, no answer prefix, stop at the end of the line), where it fits the 8192-token
  context; the cost anchor, on the first ``--icl-questions`` questions of each file.

KBs and questions: ``synthetic`` rows use the evaluation files ``--questions-file``
(default ``synthetic_validation.json`` and ``synthetic_heldout_777.json``: 100 + 300
questions, 80 + 240 answerable), and every KB is built by
:func:`kblam_integrations.training.evaluate.evaluate` itself (asked triples + other
triples of the file + validation-split distractors, exactly N triples): each method is an
object with the interface ``evaluate()`` drives, so all methods see the same KBs. The two
KBLaM modes share one encoded KB per group, the two k of a RAG index share one index.
``real``: the KB ``KBLaMTextLoader`` (spaCy) extracts from ``tests/data/real_corpus.txt``,
with the 24 hand-written questions of ``real_corpus_questions.json`` (18 answerable: a
small sample, flagged ``small_sample``).

Metrics, the same for every method (answerable questions unless said otherwise):

* ``answer_accuracy`` + ``answer_accuracy_ci`` (95% Wilson interval): the project's answer
  rule, :func:`~kblam_integrations.training.evaluate.answer_is_correct` (containment, ROUGE-L
  for long values), and not a refusal (:func:`~kblam_integrations.training.evaluate.is_refusal`);
* ``top1_used``: the first fact the answer was given (grounded's picked fact, RAG's top hit;
  pure mode: its most-attended triple) is the asked one; ``recall_at_k``: the asked fact is
  among the ``k`` facts in the prompt; ``rank_top1``/``rank_top5``: the ranker's own
  ranking of the whole KB (KBLaM attention, RAG cosine), as ``kblam eval`` reports them;
* ``refusal_precision``/``refusal_recall``: positives are the unanswerable questions;
* ``ttft_s``: median time from the call to the first *generated* token (retrieval, prompt,
  prefill, first token; the answer prefix the system writes is not a token of the model);
  over the answers that generate; ``tokens_per_s``: generated tokens after the first,
  prefix excluded; ``prep_s``: median time to prepare one KB (encode / embed + index /
  serialise); ``added_rss_mb``: peak RSS while the method family runs minus RSS before.
* ``mcnemar_p_vs_grounded``: exact two-sided McNemar test on the same answerable
  questions, this method vs. ``kblam-grounded`` (pairs that differ only).

One run: jobs run one after the other (one subprocess per KB size and dataset, the
methods in sequence inside it), with ``--threads`` torch and faiss threads; every row
carries the run's ``run_id``; ``meta`` holds the thread count, load averages at the start
and end of the run (and per row), and the git commit. A change to any method means
re-running the whole table: there is no merging of rows from different runs.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

SCRIPT = Path(__file__).resolve()
DATA = C.ROOT / "tests" / "data"
DEFAULT_SIZES = [10, 100, 1000, 10_000, 100_000]
DEFAULT_QUESTION_FILES = [DATA / "synthetic_validation.json", DATA / "synthetic_heldout_777.json"]
DEV_FILE = DATA / "synthetic_dev_calibration.json"
DEFAULT_OUT = C.DOCS_DIR / "compare.json"
REAL_CORPUS = DATA / "real_corpus.txt"
REAL_QUESTIONS = DATA / "real_corpus_questions.json"
RAG_METHODS = ("rag-faiss-key-k1", "rag-faiss-key-k3", "rag-faiss-fact-k1", "rag-faiss-fact-k3")
KBLAM_METHODS = ("kblam-grounded", "kblam")
METHODS = (*KBLAM_METHODS, *RAG_METHODS, "icl")
DATASETS = ("synthetic", "real")
MIN_ANSWERABLE = 100  # the bar for a row's answer accuracy to be reported without a small-sample flag
DOES_NOT_FIT = "does not fit in the context window"


# ----------------------------------------------------------------------- statistics
def wilson(k: int, n: int, z: float = 1.959964) -> list[float] | None:
    """95% Wilson score interval of a proportion ``k / n`` (None for n = 0)."""
    if n <= 0:
        return None
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return [max(0.0, centre - half), min(1.0, centre + half)]


def mcnemar_p(a: str, b: str) -> float | None:
    """Exact two-sided McNemar p-value of two 0/1 strings over the same questions."""
    if not a or len(a) != len(b):
        return None
    n01 = sum(x == "0" and y == "1" for x, y in zip(a, b))
    n10 = sum(x == "1" and y == "0" for x, y in zip(a, b))
    n = n01 + n10
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(n01, n10) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


# ------------------------------------------------------------------------ timing
class TokenTimer:
    """A ``generate()`` streamer that times the first *generated* token.

    ``generate`` first puts the prompt (answer prefix included), then one token per step;
    the answer prefix a system writes itself never arrives as a generated token. No
    ``on_finalized_text``: text the system hands over without generating is not timed.
    """

    def __init__(self):
        self.t0 = time.perf_counter()
        self.puts = 0
        self.generated = 0
        self.first: float | None = None
        self.last: float | None = None

    def put(self, value) -> None:
        now = time.perf_counter()
        self.puts += 1
        if self.puts == 1:
            return  # the prompt
        if self.first is None:
            self.first = now
        self.generated += int(value.numel())
        self.last = now

    def end(self) -> None:
        pass

    @property
    def ttft(self) -> float | None:
        return None if self.first is None else self.first - self.t0

    @property
    def rate(self) -> float | None:
        if self.generated < 2 or self.last is None or self.last <= self.first:
            return None
        return (self.generated - 1) / (self.last - self.first)


def _key(t) -> tuple[str, str]:
    return (t.name, t.property)


# --------------------------------------------------------------------- method families
class _DoesNotFit(Exception):
    def __init__(self, tokens: int, limit: int):
        super().__init__(f"{DOES_NOT_FIT} ({tokens} prompt tokens, limit {limit})")
        self.tokens, self.limit = tokens, limit


class Family:
    """Methods that share one KB preparation, behind the interface ``evaluate()`` drives.

    ``evaluate()`` builds each KB (``encode_kb``), ranks it (``retrieve_batch``) and calls
    ``generate`` once per question; ``generate`` answers with every method of the family
    and logs each answer (the first method's result goes back to ``evaluate()``).
    """

    methods: tuple[str, ...] = ()

    def __init__(self, model, methods, max_new_tokens: int):
        self.model, self.methods, self.max_new_tokens = model, tuple(methods), max_new_tokens
        self.log: dict[str, list[dict]] = {m: [] for m in self.methods}
        self.prep: list[float] = []

    def encode_kb(self, kb):
        t0 = time.perf_counter()
        prepared = self._prepare(kb)
        self.prep.append(time.perf_counter() - t0)
        return prepared

    def generate(self, question, kb=None, *, mode=None, max_new_tokens=None):
        first = None
        for m in self.methods:
            timer = TokenTimer()
            t0 = time.perf_counter()
            res = self._answer(m, question, kb, timer)
            total = time.perf_counter() - t0
            used, k = self._used(m, res)
            self.log[m].append({"text": res.text, "used": [_key(t) for t in used], "k": k, "ttft": timer.ttft,
                                "rate": timer.rate, "generated": timer.generated, "total_s": total})
            first = first or res
        return first


class KBLaMFamily(Family):
    def _prepare(self, kb):
        return self.model.encode_kb(kb)

    def retrieve_batch(self, questions, tokens, **kwargs):
        return self.model.retrieve_batch(questions, tokens, **kwargs)

    @property
    def refusal_threshold(self) -> float:
        return self.model.refusal_threshold

    def _answer(self, method, question, tokens, timer):
        mode = "grounded" if method == "kblam-grounded" else "kblam"
        return self.model.generate(question, kb=tokens, mode=mode, max_new_tokens=self.max_new_tokens,
                                   streamer=timer)

    def _used(self, method, res):
        if method == "kblam-grounded":  # the facts written into the prompt, the first leads the answer
            return list(res.triples), len(res.triples)
        top = res.top_k(1)
        return [s.triple for s in top], None  # pure mode attends to every triple: no "k facts in the prompt"


class RAGFamily(Family):
    """``rag-faiss-{index}-k{k}`` methods over one index (the k share it)."""

    def __init__(self, model, methods, max_new_tokens: int, index_text: str, min_cosine: float | None):
        from kblam_integrations.baselines.rag import RAGEvalModel

        super().__init__(model, methods, max_new_tokens)
        self.index_text, self.min_cosine = index_text, min_cosine
        self.eval_model = RAGEvalModel(model, index_text=index_text, min_cosine=min_cosine)

    def _prepare(self, kb):
        return self.eval_model.encode_kb(kb)

    def retrieve_batch(self, questions, rag, **kwargs):
        return self.eval_model.retrieve_batch(questions, rag, **kwargs)

    @property
    def refusal_threshold(self) -> float:
        return self.eval_model.refusal_threshold

    def _answer(self, method, question, rag, timer):
        return rag.answer(question, k=int(method.rsplit("-k", 1)[1]), max_new_tokens=self.max_new_tokens,
                          streamer=timer)

    def _used(self, method, res):
        return list(res.triples), int(method.rsplit("-k", 1)[1])


class ICLFamily(Family):
    """The whole KB in the prompt, where it fits (same prompt layout as grounded mode, no prefix)."""

    def __init__(self, model, methods, max_new_tokens: int, longest_question: str):
        super().__init__(model, methods, max_new_tokens)
        self.longest = longest_question
        self.prompt_tokens: int | None = None

    def _prepare(self, kb):
        from kblam_integrations.kb.knowledge_base import KnowledgeBase
        from kblam_integrations.model.grounded_answer import grounded_messages

        triples = tuple(KnowledgeBase(kb))
        n = int(self.model.prompt_ids(grounded_messages(self.model, self.longest, triples), check_length=False).shape[1])
        self.prompt_tokens = max(self.prompt_tokens or 0, n)
        if n + self.max_new_tokens > C.context_limit(self.model):
            raise _DoesNotFit(n, C.context_limit(self.model))
        return _Facts(triples)

    def retrieve_batch(self, questions, facts, return_refusal_scores=False, **kwargs):
        import torch

        scores, null = torch.zeros(len(questions), len(facts.triples)), torch.zeros(len(questions))
        return (scores, null, torch.zeros(len(questions))) if return_refusal_scores else (scores, null)

    refusal_threshold = 1.0

    def _answer(self, method, question, facts, timer):
        from kblam_integrations.model.grounded_answer import grounded_messages

        return self.model._generate(grounded_messages(self.model, question, facts.triples), None,
                                    use_kb_tokens=False, max_new_tokens=self.max_new_tokens, temperature=0.0,
                                    stop=["\n"], streamer=timer, top_k_kb=None, seed=None)

    def _used(self, method, res):
        return [], None


class _Facts:
    def __init__(self, triples):
        self.triples = triples


def families_for(methods: list[str]) -> list[tuple[str, list[str]]]:
    """Group the selected methods by the KB preparation they share, in a fixed order."""
    groups = [("kblam", [m for m in KBLAM_METHODS if m in methods]),
              ("rag-key", [m for m in RAG_METHODS if m in methods and "-key-" in m]),
              ("rag-fact", [m for m in RAG_METHODS if m in methods and "-fact-" in m]),
              ("icl", ["icl"] if "icl" in methods else [])]
    return [(name, ms) for name, ms in groups if ms]


# ------------------------------------------------------------------------------ data
def load_question_file(path: Path, max_questions: int | None) -> tuple[list, list[dict]]:
    from kblam_integrations.training.evaluate import load_eval_file

    triples, questions = load_eval_file(path)
    return triples, questions[:max_questions] if max_questions else questions


def real_case(corpus: Path = REAL_CORPUS, questions_file: Path = REAL_QUESTIONS) -> tuple[list, list[dict], int]:
    """The spaCy-extracted KB of the real corpus and its questions in ``evaluate()``'s format.

    An answerable question's (name, property) is that of the extracted triple whose value is
    the answer and whose name occurs in the question; questions about facts the extractor
    missed are dropped (their count is returned).
    """
    from kblam_integrations.integrations.langchain_loaders import KBLaMTextLoader
    from kblam_integrations.training.evaluate import normalise

    kb = list(KBLaMTextLoader(Path(corpus)).load_knowledge_base())
    spec = json.loads(Path(questions_file).read_text(encoding="utf-8"))
    questions, missed = [], 0
    for item in spec["questions"]:
        q, value = item["question"], item["answer"]
        if value is None:
            questions.append({"q": q, "name": "(not in the corpus)", "property": "(none)", "answer": None})
            continue
        hits = [t for t in kb if normalise(value) == normalise(t.value) and normalise(t.name) in normalise(q)]
        if not hits:
            missed += 1
            continue
        questions.append({"q": q, "name": hits[0].name, "property": hits[0].property, "answer": value})
    return kb, questions, missed


# ------------------------------------------------------------------------- scoring
def score(method: str, per_source: list[tuple[str, list[dict], list[dict], list[dict]]]) -> dict:
    """One row's metrics from ``(source, questions, evaluate() records, method log)`` per file."""
    from kblam_integrations.training.evaluate import answer_is_correct, is_refusal

    tot = {"answerable": 0, "correct": 0, "top1": 0, "recall": 0, "rank1": 0, "rank5": 0, "ranked": 0,
           "tp": 0, "fp": 0, "fn": 0}
    correct_bits, by_source, ttfts, rates, ks, samples = [], {}, [], [], set(), []
    for source, questions, records, log in per_source:
        n_ans = n_ok = 0
        for q, rec, ans in zip(questions, records, log):
            refused = is_refusal(ans["text"])
            if ans["ttft"] is not None:
                ttfts.append(ans["ttft"])
            if ans["rate"] is not None:
                rates.append(ans["rate"])
            if ans["k"] is not None:
                ks.add(ans["k"])
            if len(samples) < 6:
                samples.append({"q": q["q"], "expected": q.get("answer"), "answer": ans["text"]})
            if q.get("answer") is None:
                tot["tp"] += refused
                tot["fn"] += not refused
                continue
            ok = (not refused) and answer_is_correct(q["answer"], ans["text"])
            target = (q["name"], q["property"])
            n_ans += 1
            n_ok += ok
            correct_bits.append("1" if ok else "0")
            tot["fp"] += refused
            tot["top1"] += bool(ans["used"]) and tuple(ans["used"][0]) == target
            tot["recall"] += target in {tuple(u) for u in ans["used"]}
            if "rank" in rec:
                tot["ranked"] += 1
                tot["rank1"] += rec["rank"] == 0
                tot["rank5"] += rec["rank"] < 5
        tot["answerable"] += n_ans
        tot["correct"] += n_ok
        by_source[source] = {"answerable": n_ans, "answer_accuracy": n_ok / n_ans if n_ans else None,
                             "answer_accuracy_ci": wilson(n_ok, n_ans)}
    n = tot["answerable"]
    uses_facts = method != "icl"
    k = sorted(ks)[0] if len(ks) == 1 else None
    ttfts.sort()
    return {
        "n_questions": sum(len(qs) for _, qs, _, _ in per_source),
        "answerable": n, "unanswerable": tot["tp"] + tot["fn"], "answer_correct": tot["correct"],
        "answer_accuracy": tot["correct"] / n if n else None, "answer_accuracy_ci": wilson(tot["correct"], n),
        "top1_used": tot["top1"] / n if n and uses_facts else None,
        "top1_used_ci": wilson(tot["top1"], n) if uses_facts else None,
        "k": k, "recall_at_k": tot["recall"] / n if n and k else None,
        "rank_top1": tot["rank1"] / tot["ranked"] if tot["ranked"] and uses_facts else None,
        "rank_top5": tot["rank5"] / tot["ranked"] if tot["ranked"] and uses_facts else None,
        "refusal_precision": tot["tp"] / (tot["tp"] + tot["fp"]) if tot["tp"] + tot["fp"] else None,
        "refusal_recall": tot["tp"] / (tot["tp"] + tot["fn"]) if tot["tp"] + tot["fn"] else None,
        "refusals": tot["tp"] + tot["fp"],
        "ttft_s": statistics.median(ttfts) if ttfts else None,
        "ttft_p90_s": ttfts[int(0.9 * (len(ttfts) - 1))] if ttfts else None,
        "n_timed": len(ttfts),
        "tokens_per_s": statistics.median(rates) if rates else None,
        "by_source": by_source, "correct_bits": "".join(correct_bits), "samples": samples,
    }


# --------------------------------------------------------------------------- worker
def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        return None


def set_threads(threads: int | None) -> int:
    n = C.setup_env(threads)
    try:
        import faiss

        faiss.omp_set_num_threads(n)
    except ImportError:  # pragma: no cover
        pass
    return n


def calibrate(model, index_texts: set[str], dev_file: Path = DEV_FILE) -> dict[str, dict]:
    """RAG refusal thresholds on the dev file at KB 100 (as KBLaM's threshold was calibrated)."""
    from kblam_integrations.baselines.rag import calibrate_rag_refusal

    out = {}
    for text in sorted(index_texts):
        t0 = time.perf_counter()
        cos, metrics = calibrate_rag_refusal(model, dev_file, index_text=text, kb_size=100)
        out[text] = {"min_cosine": cos, **metrics, "seconds": time.perf_counter() - t0}
    return out


def run_family(model, name: str, methods: list[str], sources: list[tuple[str, list, list[dict]]], kb_size: int | None,
               *, max_new_tokens: int, seed: int, thresholds: dict, icl_questions: int) -> list[dict]:
    """Evaluate one family on every source; one row per method."""
    import torch

    from kblam_integrations.training.evaluate import evaluate

    gc.collect()
    C.reset_peak()
    base = C.rss_mb()  # after the reset: the peak starts at this RSS
    t0, cpu0 = time.perf_counter(), time.process_time()
    if name == "kblam":
        fam = KBLaMFamily(model, methods, max_new_tokens)
    elif name.startswith("rag-"):
        text = name.split("-", 1)[1]
        fam = RAGFamily(model, methods, max_new_tokens, text, thresholds[text]["min_cosine"])
    else:
        sources = [(s, tr, qs[:icl_questions]) for s, tr, qs in sources]
        longest = max((q["q"] for _, _, qs in sources for q in qs), key=len)
        fam = ICLFamily(model, methods, max_new_tokens, longest)
    per_source: dict[str, list] = {m: [] for m in methods}
    note = None
    try:
        with torch.no_grad():
            for source, triples, questions in sources:
                offset = {m: len(fam.log[m]) for m in methods}
                size = kb_size if kb_size is not None else len(triples)
                t_src = time.perf_counter()
                metrics, records = evaluate(fam, triples, questions, kb_size=size, seed=seed,
                                            max_new_tokens=max_new_tokens, return_records=True)
                progress(f"KB {size}: {'+'.join(methods)} on {source} ({len(questions)} questions, "
                         f"{len(fam.prep)} KBs so far): {time.perf_counter() - t_src:.0f} s")
                for m in methods:
                    per_source[m].append((source, questions, records, fam.log[m][offset[m]:]))
                # evaluate()'s own verdicts of the family's first method must agree with ours
                first = score(methods[0], [per_source[methods[0]][-1]])
                if metrics["answer_accuracy"] is not None and abs(metrics["answer_accuracy"]
                                                                  - first["answer_accuracy"]) > 1e-9:
                    raise AssertionError(f"{methods[0]}: evaluate() says {metrics['answer_accuracy']}, "
                                         f"the benchmark {first['answer_accuracy']}")
    except _DoesNotFit as exc:
        note = str(exc)
    peak = C.peak_rss_mb(at_least=base)
    rows = []
    for m in methods:
        row: dict[str, Any] = {"method": m, "fits": note is None, "base_rss_mb": base,
                               "threads": torch.get_num_threads(), "family": name,
                               "prep_shared_with": [x for x in methods if x != m] or None}
        if note is None:
            row.update(score(m, per_source[m]))
            row.update(prep_s=statistics.median(fam.prep) if fam.prep else None, n_kbs=len(fam.prep),
                       peak_rss_mb=peak, added_rss_mb=peak - base,
                       family_seconds=time.perf_counter() - t0, family_cpu_s=time.process_time() - cpu0)
        else:
            row.update(note=note, answer_accuracy=None, ttft_s=None)
        if name.startswith("rag-"):
            row["refusal_min_cosine"] = thresholds[name.split("-", 1)[1]]["min_cosine"]
        if name == "icl":
            row.update(prompt_tokens=fam.prompt_tokens, context_limit=C.context_limit(model),
                       icl_questions_per_file=icl_questions)
        rows.append(row)
    return rows


def job_rows(job: dict) -> list[dict]:
    """One (dataset, KB size) job in this process: load, warm up, calibrate, every family in turn."""
    set_threads(job.get("threads"))
    t0 = time.perf_counter()
    model, trained = C.load_model(job.get("weights"))
    import torch

    with torch.no_grad():  # warm-up: lazy initialisation is not measured
        model.generate("Hello", max_new_tokens=2)
        model.encoder.embed(["warm-up"])
    load_s = time.perf_counter() - t0
    fams = families_for(job["methods"])
    texts = {name.split("-", 1)[1] for name, _ in fams if name.startswith("rag-")}
    progress(f"{job['dataset']} {job['size']}: model loaded and warm in {load_s:.0f} s")
    thresholds = calibrate(model, texts, Path(job.get("dev_file") or DEV_FILE)) if texts else {}
    if thresholds:
        progress("RAG refusal thresholds: " + ", ".join(f"{k} {v['min_cosine']:.3f} ({v['seconds']:.0f} s)"
                                                      for k, v in thresholds.items()))
    if job["dataset"] == "real":
        kb, questions, missed = real_case()
        sources = [("real_corpus_questions", kb, questions)]
        size = None
    else:
        sources = []
        for f in job["files"]:
            triples, questions = load_question_file(Path(f), job.get("max_questions"))
            sources.append((Path(f).stem, triples, questions))
        size, missed = job["size"], 0
    rows = []
    for name, methods in fams:
        load0 = _loadavg()
        for row in run_family(model, name, methods, sources, size, max_new_tokens=job["max_new_tokens"],
                              seed=job["seed"], thresholds=thresholds, icl_questions=job["icl_questions"]):
            row.update(dataset=job["dataset"], kb_size=size if size is not None else len(sources[0][1]),
                       run_id=job["run_id"], trained_weights=trained, load_s=load_s, loadavg_start=load0,
                       loadavg_end=_loadavg(), sources=[s for s, _, _ in sources],
                       small_sample=(row.get("answerable") or 0) < MIN_ANSWERABLE,
                       unresolved_targets=missed, calibration=thresholds or None)
            rows.append(row)
    for row in rows:  # CPU seconds of the whole worker (load, calibration, every family): for planning
        row["worker_cpu_s"] = time.process_time()
    return rows


# ------------------------------------------------------------------------------ driver
def git_commit() -> dict:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=C.ROOT, capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(status)}


def _shown(path) -> str:
    """A path relative to the checkout where it lies inside it."""
    p = Path(path).resolve()
    return str(p.relative_to(C.ROOT)) if p.is_relative_to(C.ROOT) else str(p)


def plan_jobs(args, run_id: str) -> list[dict]:
    common = {"methods": args.methods, "threads": args.threads, "weights": args.weights, "seed": args.seed,
              "max_new_tokens": args.max_new_tokens, "files": [str(Path(f).resolve()) for f in args.questions_file],
              "max_questions": args.max_questions, "icl_questions": args.icl_questions, "run_id": run_id,
              "dev_file": str(Path(args.dev_file).resolve())}
    jobs = []
    if "synthetic" in args.datasets:
        jobs += [{**common, "dataset": "synthetic", "size": s} for s in sorted(args.sizes)]
    if "real" in args.datasets:
        jobs.insert(min(2, len(jobs)), {**common, "dataset": "real", "size": None})
    return jobs


def run_job(job: dict, isolate: bool = True) -> list[dict]:
    """One job in a fresh subprocess (its progress lines go to this process's stderr)."""
    if not isolate:
        return job_rows(job)
    cmd = [sys.executable, str(SCRIPT), "--worker", json.dumps(job)]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, cwd=str(C.ROOT))
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(C.RESULT_PREFIX):
            return json.loads(line[len(C.RESULT_PREFIX):])["rows"]
    raise RuntimeError(f"measurement subprocess failed (exit {proc.returncode}), see its stderr above")


def progress(msg: str) -> None:
    print(f"    {time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog="See the module docstring for details.",
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=DEFAULT_SIZES, help="synthetic KB sizes in triples")
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    ap.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    ap.add_argument("--questions-file", type=Path, nargs="+", default=DEFAULT_QUESTION_FILES,
                    help="evaluation files (kblam eval format) for the synthetic rows; their questions are pooled")
    ap.add_argument("--max-questions", type=int, default=None, help="first N questions of each file (default: all)")
    ap.add_argument("--icl-questions", type=int, default=50, help="ICL (the slow cost anchor): first N per file")
    ap.add_argument("--dev-file", type=Path, default=DEV_FILE, help="where the RAG refusal threshold is calibrated")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2, help="torch and faiss threads")
    ap.add_argument("--weights", default=None, help="KBLaM checkpoint (default: shipped)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file (compare.md and the PNG go next to it)")
    ap.add_argument("--report-only", action="store_true", help="only rebuild compare.md and the plot from --out")
    ap.add_argument("--no-isolate", action="store_true", help="measure in this process (peak RSS accumulates)")
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        C.emit_result({"rows": job_rows(json.loads(args.worker))})
        return 0
    if args.report_only:
        report(args.out, plots=not args.no_plots)
        return 0
    if any(s <= 0 for s in args.sizes) or (args.max_questions is not None and args.max_questions <= 0):
        ap.error("--sizes and --max-questions must be positive")
    run_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    meta = {"run_id": run_id, "command": " ".join(["python benchmarks/compare.py", *argv]),
            "machine": C.machine_info(), "threads": args.threads, "git": git_commit(),
            "started": time.strftime("%Y-%m-%d %H:%M"), "loadavg_start": _loadavg(),
            "questions_files": [_shown(f) for f in args.questions_file],
            "max_questions": args.max_questions, "icl_questions": args.icl_questions,
            "dev_file": str(args.dev_file.name), "max_new_tokens": args.max_new_tokens, "seed": args.seed,
            "methods": args.methods, "sizes": sorted(args.sizes), "datasets": args.datasets}
    data = {"meta": meta, "rows": []}
    t_start = time.perf_counter()
    failed = []
    for job in plan_jobs(args, run_id):
        t0 = time.perf_counter()
        label = f"{job['dataset']:9s} {str(job['size'] or 'corpus'):>7s}"
        try:
            new_rows = run_job(job, isolate=not args.no_isolate)
        except Exception as exc:  # noqa: BLE001 - report, keep the other rows, exit non-zero
            failed.append(label)
            print(f"  {label}: FAILED: {str(exc).strip().splitlines()[-1] if str(exc).strip() else exc!r}", flush=True)
            continue
        for r in new_rows:
            r["job_seconds"] = time.perf_counter() - t0
        data["rows"] += new_rows
        meta["minutes"] = (time.perf_counter() - t_start) / 60
        meta["loadavg_end"] = _loadavg()
        C.write_json(args.out, data)
        for r in new_rows:
            ci = r.get("answer_accuracy_ci")
            print(f"  {label}: {r['method']:18s} acc {C.fmt(r.get('answer_accuracy'), 3)} "
                  f"[{C.fmt(ci[0] if ci else None, 2)}, {C.fmt(ci[1] if ci else None, 2)}] "
                  f"n={r.get('answerable')} top1 {C.fmt(r.get('top1_used'), 2)} "
                  f"refusal P/R {C.fmt(r.get('refusal_precision'), 2)}/{C.fmt(r.get('refusal_recall'), 2)} "
                  f"ttft {C.fmt(r.get('ttft_s'))} s [{time.perf_counter() - t0:.0f} s]", flush=True)
    meta["finished"] = time.strftime("%Y-%m-%d %H:%M")
    meta["loadavg_end"] = _loadavg()
    meta["minutes"] = (time.perf_counter() - t_start) / 60
    print(f"measured in {meta['minutes']:.1f} min")
    C.write_json(args.out, data)
    report(args.out, plots=not args.no_plots)
    if failed:
        print("FAILED jobs: " + "; ".join(failed), file=sys.stderr)
        return 1
    return 0


# ------------------------------------------------------------------------- reporting
def _sort_key(row: dict) -> tuple:
    return (row.get("dataset") != "synthetic", row["kb_size"], METHODS.index(row["method"]))


def load_results(path: Path) -> dict:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    data.setdefault("meta", {})
    data.setdefault("rows", [])
    return data


def _get(rows, dataset, method, size=None):
    return next((r for r in rows if r.get("dataset") == dataset and r["method"] == method
                 and (size is None or r["kb_size"] == size)), None)


def _ci(row: dict | None, key: str = "answer_accuracy") -> str:
    if not row or row.get(key) is None:
        return "–"
    ci = row.get(f"{key}_ci")
    return f"{row[key]:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else f"{row[key]:.2f}"


def add_comparisons(rows: list[dict]) -> None:
    """``mcnemar_p_vs_grounded`` for every row answered on the same questions as ``kblam-grounded``."""
    for r in rows:
        g = _get(rows, r.get("dataset"), "kblam-grounded", r["kb_size"])
        if g and r is not g and r.get("correct_bits") and len(r["correct_bits"]) == len(g.get("correct_bits") or ""):
            r["mcnemar_p_vs_grounded"] = mcnemar_p(g["correct_bits"], r["correct_bits"])


def check_bar(data: dict) -> list[str]:
    """Problems with the run against the issue's bar (empty: none)."""
    rows, problems = data["rows"], []
    ids = {r.get("run_id") for r in rows}
    if len(ids) != 1:
        problems.append(f"rows come from {len(ids)} runs: {sorted(map(str, ids))}")
    for r in rows:
        if r["method"] == "icl" or r.get("answer_accuracy") is None or r.get("dataset") == "real":
            continue
        if (r.get("answerable") or 0) < MIN_ANSWERABLE or not r.get("answer_accuracy_ci"):
            problems.append(f"{r['method']} at {r['kb_size']}: {r.get('answerable')} answerable questions")
    return problems


def findings(rows: list[dict]) -> list[str]:
    """Plain statements computed from the rows: who wins where, and whether the data can tell."""
    out = []
    syn = [r for r in rows if r.get("dataset") == "synthetic" and r.get("answer_accuracy") is not None]
    for size in sorted({r["kb_size"] for r in syn}):
        g = _get(syn, "synthetic", "kblam-grounded", size)
        rags = [r for r in syn if r["kb_size"] == size and r["method"] in RAG_METHODS]
        if not rags:
            continue
        best = max(rags, key=lambda r: r["answer_accuracy"])
        txt = f"**{size:,} triples** ({best['answerable']} answerable): best RAG ({best['method']}) {_ci(best)}"
        if g:
            p = best.get("mcnemar_p_vs_grounded")
            diff = g["answer_accuracy"] - best["answer_accuracy"]
            verdict = ("no significant difference" if p is None or p >= 0.05
                       else ("grounded KBLaM is better" if diff > 0 else "RAG is better"))
            txt += (f" vs. kblam-grounded {_ci(g)}: difference {diff:+.3f}, paired McNemar p = "
                    f"{C.fmt(p, 3)}: {verdict}")
            pure = _get(syn, "synthetic", "kblam", size)
            if pure:
                txt += f"; pure kblam {_ci(pure)}"
        txt += "."
        for m in ("kblam-grounded", best["method"]):
            r = _get(syn, "synthetic", m, size)
            if r and r.get("ttft_s") is not None:
                txt += f" {m}: first generated token {r['ttft_s']:.3f} s, prep {C.fmt(r.get('prep_s'), 2)} s/KB."
        out.append(txt)
    real = [r for r in rows if r.get("dataset") == "real" and r.get("answer_accuracy") is not None]
    if real:
        out.append(f"**Real-text KB** ({real[0]['kb_size']} triples, {real[0]['answerable']} answerable, a small "
                   "sample): " + ", ".join(f"{r['method']} {_ci(r)}" for r in sorted(real, key=_sort_key)) + ".")
    return out


COLUMNS = [("method", "method"), ("kb_size", "KB size"), ("answer", "answer acc. [95% CI]"),
           ("answerable", "answerable"), ("top1_used", "top-1 used"), ("recall_at_k", "recall@k"), ("k", "k"),
           ("refusal_precision", "refusal P"), ("refusal_recall", "refusal R"), ("p", "McNemar p vs. grounded"),
           ("ttft_s", "TTFT (s)"), ("tokens_per_s", "tokens/s"), ("prep_s", "prep (s/KB)"),
           ("added_rss_mb", "added RSS (MB)")]


def _table(rows: list[dict]) -> str:
    shown = []
    for r in rows:
        shown.append(dict(r, answer=_ci(r) if r.get("fits", True) else "does not fit",
                          p=r.get("mcnemar_p_vs_grounded")))
    return C.markdown_table(shown, COLUMNS)


def write_plot(rows: list[dict], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    syn = [r for r in rows if r.get("dataset") == "synthetic" and r.get("answer_accuracy") is not None
           and r["method"] != "icl"]
    if not syn:
        return []
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    methods = [m for m in METHODS if any(r["method"] == m for r in syn)]
    for i, m in enumerate(methods):
        pts = sorted((r["kb_size"], r["answer_accuracy"], r["answer_accuracy_ci"]) for r in syn if r["method"] == m)
        xs = [p[0] * (1 + 0.04 * (i - len(methods) / 2)) for p in pts]  # dodge the error bars
        ys = [p[1] for p in pts]
        err = [[p[1] - p[2][0] for p in pts], [p[2][1] - p[1] for p in pts]]
        axes[0].errorbar(xs, ys, yerr=err, fmt="o-", capsize=3, label=m)
        tt = sorted((r["kb_size"], r["ttft_s"]) for r in syn if r["method"] == m and r.get("ttft_s"))
        if tt:
            axes[1].plot(*zip(*tt), "o-", label=m)
    axes[0].set_ylabel("answer accuracy (95% Wilson interval)")
    axes[0].set_ylim(-0.03, 1.03)
    axes[1].set_ylabel("time to first generated token (s)")
    axes[1].set_yscale("log")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("KB size (triples)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("KBLaM vs. RAG (faiss, same answer step), one run")
    fig.tight_layout()
    path = out_dir / "compare_accuracy.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [path]


def write_markdown(path: Path, data: dict, plots: list[Path]) -> None:
    rows = sorted(data["rows"], key=_sort_key)
    meta = data.get("meta", {})
    info = meta.get("machine", {})
    git = meta.get("git", {})
    text = [f"Run `{meta.get('run_id', '?')}`: `{meta.get('command', 'python benchmarks/compare.py')}`"
            + (f", {meta['minutes']:.0f} min" if meta.get("minutes") else "")
            + f", on {info.get('cpus', '?')} CPUs, {info.get('ram_gib', '?')} GiB RAM, torch {info.get('torch', '?')}, "
            f"{meta.get('threads', '?')} torch/faiss thread(s); load average (1/5/15 min) {meta.get('loadavg_start')} "
            f"at the start, {meta.get('loadavg_end')} at the end; commit `{(git.get('commit') or '?')[:10]}`"
            + (" (with uncommitted changes)" if git.get("dirty") else "") + "."]
    if any(r.get("trained_weights") is False for r in rows):
        text.append("**UNTRAINED adapters: KBLaM accuracies are meaningless.**")
    problems = check_bar(data)
    if problems:
        text.append("**Not the full comparison:** " + "; ".join(problems) + ".")
    text.append("")
    found = findings(rows)
    if found:
        text.append("**Findings (computed from the rows below):**\n")
        text.extend(f"- {f}" for f in found)
        text.append("")
    syn = [r for r in rows if r.get("dataset") == "synthetic"]
    if syn:
        files = ", ".join(f"`{f}`" for f in meta.get("questions_files", []))
        text.append(f"**Synthetic KBs** (questions of {files}"
                    + (f", first {meta['max_questions']} of each" if meta.get("max_questions") else "")
                    + "; KBs built by `evaluate()`; ICL on the first "
                    f"{meta.get('icl_questions', '?')} questions of each file). '–': not applicable.\n")
        text.append(_table(syn))
    real = [r for r in rows if r.get("dataset") == "real"]
    if real:
        text.append(f"**Real-text KB**: the {real[0]['kb_size']} triples `KBLaMTextLoader` (spaCy) extracts from "
                    f"`tests/data/real_corpus.txt`, {real[0].get('n_questions')} hand-written questions "
                    f"({real[0].get('answerable')} answerable"
                    + (f"; {real[0]['unresolved_targets']} more are about facts the extractor missed and are "
                       "left out" if real[0].get("unresolved_targets") else "") + "): a small sample.\n")
        text.append(_table(real))
    cal = next((r["calibration"] for r in rows if r.get("calibration")), None)
    if cal:
        text.append("RAG refusal thresholds (best cosine below it: refuse), calibrated for maximum refusal F1 on "
                    f"`{meta.get('dev_file')}` at KB 100: "
                    + "; ".join(f"{k} index {v['min_cosine']:.3f} (dev P {v['refusal_precision']:.2f} / "
                                f"R {v['refusal_recall']:.2f})" for k, v in cal.items()) + ".\n")
    for p in plots:
        text.append(f"\n![{p.stem.replace('_', ' ')}]({p.name})\n")
    Path(path).write_text("\n".join(text), encoding="utf-8")


def report(out: Path, plots: bool = True) -> None:
    data = load_results(out)
    data["rows"].sort(key=_sort_key)
    add_comparisons(data["rows"])
    C.write_json(out, data)
    paths = write_plot(data["rows"], out.parent) if plots else []
    write_markdown(out.with_suffix(".md"), data, paths)
    for f in findings(data["rows"]):
        print("-", f.replace("**", ""))
    for p in check_bar(data):
        print("bar:", p)
    print(f"wrote {out.with_suffix('.md')}" + "".join(f", {p}" for p in paths))


if __name__ == "__main__":
    raise SystemExit(main())
