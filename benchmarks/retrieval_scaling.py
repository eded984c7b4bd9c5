"""Retrieval as the KB grows: KBLaM's exact scan, KBLaM over the key index, and cosine over the same encoder.

Usage::

    .venv/bin/python benchmarks/retrieval_scaling.py                     # 1k 10k 100k, ~20 min on 2 cores
    .venv/bin/python benchmarks/retrieval_scaling.py --sizes 1000 10000 --threads 1

Questions: the answerable questions of ``tests/data/synthetic_heldout_777.json`` (held
out from training and from every tuning choice). The KB of size N: their triples plus
synthetic validation-split distractors (``SyntheticKBGenerator(split="validation",
seed=7919)``, names disjoint from the questions'), shuffled; smaller KBs are prefixes of
the largest that keep every asked triple. Key sentence embeddings are computed once and
cached (``--cache-dir``); the knowledge-token keys are made from them by the shipped
adapters, exactly as :class:`~kblam_integrations.encoding.kb_encoder.KBEncoder` does.

Methods (all rows of one run share the KB, the questions and the load):

* ``kblam``: the shipped retrieval pass, scanning every key (``kb_index=None``);
* ``kblam-index-ivf`` / ``kblam-index-flat``: the same pass over an IVF / exact (flat) key
  index (``config.kb_index_*``); ``index_build_s`` is the index's build time;
* ``cosine``: the question's MiniLM embedding against the key embeddings (faiss flat
  inner product on normalised vectors: the RAG baseline's key index).

``top1``/``top5`` carry Wilson 95% intervals. ``top1_agreement`` (index rows, when ``kblam``
runs before them): the share of questions whose top-1 triple is the exact scan's, the
index's fidelity whether or not that triple is the right one. ``top1_reranked`` (KBLaM rows): the attention's
top 5 ordered by question-key cosine, the order grounded and pure mode answer from
(``grounded_rerank``). Writes ``docs/benchmarks/retrieval_scaling.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from pathlib import Path

import _common as C
from compare import wilson

QUESTIONS = C.ROOT / "tests" / "data" / "synthetic_heldout_777.json"
DEFAULT_OUT = C.DOCS_DIR / "retrieval_scaling.json"
INDEX_KINDS = {"kblam-index-ivf": "ivf", "kblam-index-flat": "flat"}
COLUMNS = [("method", "method"), ("kb_size", "KB size"), ("questions", "questions"), ("top1", "top-1"),
           ("top1_ci", "top-1 95% CI"), ("top5", "top-5"), ("top1_reranked", "top-1 reranked"),
           ("top1_agreement", "top-1 = exact scan's"),
           ("index_build_s", "index build (s)"),
           ("seconds", "retrieval time (s)")]


def progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def build_kb(n: int, triples, questions) -> list:
    """The held-out file's answerable triples plus distractors up to ``n``, shuffled (seed 0)."""
    from kblam_integrations.training.synthetic import SyntheticKBGenerator

    absent = {(q["name"], q["property"]) for q in questions if q.get("answer") is None}
    names = {t.name for t in triples} | {q["name"] for q in questions}
    kb = [t for t in triples if (t.name, t.property) not in absent]
    pool = SyntheticKBGenerator(split="validation", seed=7919).distractors(n - len(kb), exclude_names=names)
    kb += [t for t in pool if (t.name, t.property) not in absent][: n - len(kb)]
    random.Random(0).shuffle(kb)
    return kb


def cached_embeddings(model, n: int, cache_dir: Path, questions_file: Path = QUESTIONS):
    """``(kb, key_embeddings)`` for the size-``n`` KB; embeddings cached in a verified safetensors file."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    from kblam_integrations.kb.triple import Triple
    from kblam_integrations.training.evaluate import load_eval_file

    triples, questions = load_eval_file(questions_file)
    stem = "heldout777" if questions_file == QUESTIONS else questions_file.stem
    path = cache_dir / f"{stem}_kb{n}_keyemb.safetensors"
    if path.is_file():
        with safe_open(str(path), framework="pt") as f:
            meta, blob, emb = f.metadata(), f.get_tensor("triples"), f.get_tensor("key_emb")
        if meta.get("sha256") == hashlib.sha256(blob.numpy().tobytes()).hexdigest() and \
                meta.get("encoder") == model.encoder.fingerprint:
            kb = [Triple.from_dict(r) for r in json.loads(blob.numpy().tobytes())]
            return kb, questions, emb
    progress(f"building and embedding a {n}-triple KB (cached in {path})")
    kb = build_kb(n, triples, questions)
    emb = model.encoder.embed([t.key_text for t in kb], show_progress=True)
    blob = json.dumps([t.to_dict() for t in kb]).encode()
    cache_dir.mkdir(parents=True, exist_ok=True)
    blob_t = torch.frombuffer(bytearray(blob), dtype=torch.uint8)
    save_file({"key_emb": emb.contiguous(), "triples": blob_t}, str(path),
              metadata={"sha256": hashlib.sha256(blob).hexdigest(), "encoder": model.encoder.fingerprint})
    return kb, questions, emb


def tokens_for(model, kb, emb, index_kind: str | None):
    """KBTokens from key embeddings (values are not read by the retrieval pass: the keys stand in)."""
    import torch

    from kblam_integrations.encoding.key_index import KeyIndex
    from kblam_integrations.encoding.tokens import KBTokens, empty_tokens

    n, layers, dim = len(kb), len(model.config.kb_layers), model.config.kb_dim
    keys = empty_tokens(n, layers, dim)
    with torch.no_grad():
        for lo in range(0, n, 4096):
            keys[lo:lo + 4096] = model.adapters.keys(emb[lo:lo + 4096].float())
    ids = torch.arange(n)
    index, build_s = None, None
    if index_kind:
        t0 = time.perf_counter()
        index = KeyIndex.build(emb, ids, index_kind, nprobe=model.config.kb_index_nprobe,
                               metric=model.encoder.index_metric())
        build_s = time.perf_counter() - t0
    return KBTokens(-1, tuple(kb), keys, keys, emb.half(), ids, index), build_s


def rank_rows(scores, kb, asked) -> tuple[int, int]:
    import torch

    row = {(t.name, t.property): i for i, t in enumerate(kb)}
    top = torch.topk(scores, 5, dim=1).indices.tolist()
    hits = [row[(q["name"], q["property"])] for q in asked]
    return sum(t[0] == h for t, h in zip(top, hits)), sum(h in t for t, h in zip(top, hits))


def measure(model, kb, emb, asked, method: str, exact_top1=None) -> dict:
    import torch
    import torch.nn.functional as F

    t0 = time.perf_counter()
    build_s = None
    if method == "cosine":
        import faiss

        index = faiss.IndexFlatIP(emb.shape[1])
        index.add(F.normalize(emb.float(), dim=-1).numpy())
        q = F.normalize(model.encoder.embed([x["q"] for x in asked]), dim=-1).numpy()
        _, found = index.search(q, 5)
        scores = torch.zeros(len(asked), len(kb))
        scores.scatter_(1, torch.from_numpy(found), torch.arange(5, 0, -1, dtype=torch.float).expand(len(asked), 5))
    else:
        tokens, build_s = tokens_for(model, kb, emb, INDEX_KINDS.get(method))
        t0 = time.perf_counter()
        scores, _ = model.retrieve_batch([x["q"] for x in asked], tokens)
    seconds = time.perf_counter() - t0
    h1, h5 = rank_rows(scores, kb, asked)
    n = len(asked)
    row = {"method": method, "kb_size": len(kb), "questions": n, "top1": h1 / n, "top1_ci": wilson(h1, n),
           "top5": h5 / n, "top5_ci": wilson(h5, n), "index_build_s": build_s, "seconds": round(seconds, 2)}
    if method != "cosine":
        row["top1_reranked"] = reranked_top1(model, scores, emb, kb, asked)
        row["top1_rows"] = scores.argmax(1).tolist()
    if method in INDEX_KINDS and exact_top1 is not None:
        row["top1_agreement"] = sum(a == b for a, b in zip(row["top1_rows"], exact_top1)) / n
    return row


def reranked_top1(model, scores, emb, kb, asked) -> float:
    """Top-1 after ordering the attention's top 5 by question-key cosine (grounded_rerank)."""
    import torch
    import torch.nn.functional as F

    q = F.normalize(model.encoder.embed([x["q"] for x in asked]), dim=-1)
    top = torch.topk(scores, 5, dim=1).indices  # [Q, 5]
    cos = torch.einsum("qe,qke->qk", q, F.normalize(emb[top].float(), dim=-1))
    best = top.gather(1, cos.argmax(1, keepdim=True))[:, 0].tolist()
    row = {(t.name, t.property): i for i, t in enumerate(kb)}
    return sum(b == row[(x["name"], x["property"])] for b, x in zip(best, asked)) / len(asked)


def subset(kb, emb, asked, n: int):
    """The first ``n`` triples of the big KB that keep every asked triple (same order)."""
    import torch

    need = {(q["name"], q["property"]) for q in asked}
    keep = [i for i, t in enumerate(kb) if (t.name, t.property) in need]
    others = [i for i, t in enumerate(kb) if (t.name, t.property) not in need][: n - len(keep)]
    rows = sorted(keep + others)
    return [kb[i] for i in rows], emb[torch.tensor(rows)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    ap.add_argument("--methods", nargs="+", default=["kblam", "kblam-index-ivf", "cosine"],
                    choices=["kblam", *INDEX_KINDS, "cosine"])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--cache-dir", type=Path, default=None, help="key-embedding cache (default: the user cache dir)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--questions", type=Path, default=QUESTIONS, help="eval file (tune on a dev file, not this one)")
    ap.add_argument("--nprobe", type=int, default=None, help="override config.kb_index_nprobe")
    ap.add_argument("--candidates", type=int, default=None, help="override config.kb_index_candidates")
    ap.add_argument("--no-layer-queries", action="store_true", help="search the summed query only")
    args = ap.parse_args(argv)
    threads = C.setup_env(args.threads)
    import faiss

    faiss.omp_set_num_threads(threads)
    from platformdirs import user_cache_dir

    cache = args.cache_dir or Path(user_cache_dir("kblam-integrations")) / "benchmarks"
    model, _ = C.load_model(args.weights)
    if args.nprobe:
        model.config.kb_index_nprobe = args.nprobe
    if args.candidates:
        model.config.kb_index_candidates = args.candidates
    if args.no_layer_queries:
        model.config.kb_index_layer_queries = False
    kb_all, questions, emb_all = cached_embeddings(model, max(args.sizes), cache, args.questions)
    asked = [q for q in questions if q.get("answer") is not None]
    run_id = hashlib.sha256(f"{time.time()}".encode()).hexdigest()[:12]
    rows = []
    for size in sorted(args.sizes):
        kb, emb = subset(kb_all, emb_all, asked, size)
        exact_top1 = None
        for method in args.methods:
            row = measure(model, kb, emb, asked, method, exact_top1)
            if method == "kblam":
                exact_top1 = row["top1_rows"]
            row.update(run_id=run_id, nprobe=model.config.kb_index_nprobe,
                       candidates=model.config.kb_index_candidates,
                       layer_queries=model.config.kb_index_layer_queries)
            rows.append(row)
            progress(json.dumps(row))
            write(args.out, rows, threads, argv, args.questions)
    return 0


def write(out: Path, rows: list[dict], threads: int, argv, questions: Path = QUESTIONS) -> None:
    C.write_json(out, {"machine": C.machine_info(), "threads": threads, "questions_file": questions.name,
                       "rows": rows})
    shown = [{**r, "top1_ci": f"[{r['top1_ci'][0]:.2f}, {r['top1_ci'][1]:.2f}]"} for r in rows]
    shown_args = list(sys.argv[1:] if argv is None else argv)
    if "--cache-dir" in shown_args:  # a local path: not part of what reproduces the run
        i = shown_args.index("--cache-dir")
        del shown_args[i:i + 2]
    cmd = "python benchmarks/retrieval_scaling.py " + " ".join(shown_args)
    out.with_suffix(".md").write_text(
        f"Measured with `{cmd.strip()}` ({threads} thread(s)), one run (`{rows[0]['run_id']}`): "
        f"the {rows[0]['questions']} answerable questions of `{questions.name}`.\n\n"
        + C.markdown_table(shown, COLUMNS) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
