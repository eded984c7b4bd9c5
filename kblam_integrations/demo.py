"""The offline demo behind ``kblam demo``: text -> triples -> KB -> answers via LangChain.

Steps: read the bundled corpus (``kblam_integrations/data/demo_corpus.txt``), extract a
knowledge base with spaCy, show the triples, answer a few questions through
``ChatPromptTemplate | KBLaMLLM(kb=kb, mode="grounded") | StrOutputParser()``, print the
triples each answer attended to, save attention heatmaps and compare with the base
model answering without the KB. Nothing is downloaded.

Heavy imports (torch, transformers, spaCy, LangChain) happen inside the functions, so
importing this module is cheap.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from .console import attended_table, triples_table
from .runtime import auto_threads, configure_threads, quiet_loading

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console

    from .kb.knowledge_base import KnowledgeBase
    from .model.kblam_model import KBLaMModel

__all__ = [
    "DEFAULT_QUESTIONS", "DemoAnswer", "DemoReport", "attended_table", "attention_recorder", "auto_threads",
    "build_chain", "configure_threads", "corpus_paragraphs", "corpus_text", "extract_kb", "load_model", "make_llm",
    "quiet_loading", "run_demo", "triples_table",
]

CORPUS_RESOURCE = "demo_corpus.txt"

DEFAULT_QUESTIONS: tuple[str, ...] = (
    "Who founded Veltrano Dynamics?",
    "Where is Quillmark Labs based?",
    "Who is the director of the Harlow Institute?",
    "Where was Marie Curie born?",
)

UNTRAINED_WARNING = (
    "No trained KBLaM weights are installed yet, so an untrained model is used "
    "(KBLaMModel.from_backbone()): its attention over triples is not meaningful. "
    "Train adapters with `kblam train CONFIG` and pass --weights DIR."
)


# --------------------------------------------------------------------------- corpus
def corpus_text() -> str:
    """The bundled demo corpus (a few paragraphs of simple declarative sentences)."""
    return resources.files("kblam_integrations").joinpath("data", CORPUS_RESOURCE).read_text(encoding="utf-8")


def corpus_paragraphs(text: str | None = None) -> list[str]:
    """Paragraphs of ``text`` (default: the bundled corpus), blank-line separated."""
    text = corpus_text() if text is None else text
    return [" ".join(p.split()) for p in text.split("\n\n") if p.strip()]


# --------------------------------------------------------------------------- model
def load_model(weights: str | os.PathLike | None = None, *, backbone: str | None = None,
               encoder: str | None = None, console: "Console | None" = None) -> tuple["KBLaMModel", bool]:
    """Load a KBLaM model; returns ``(model, trained)``.

    With ``weights`` the checkpoint must exist. Without, the shipped weights are used or,
    while none are installed, a seeded untrained model with a warning (see
    :mod:`kblam_integrations.model.shipped`).
    """
    from .model.shipped import load_weights

    with quiet_loading():
        model, trained = load_weights(weights, backbone=backbone, encoder=encoder)
    if not trained:
        warnings.warn(UNTRAINED_WARNING, UserWarning, stacklevel=2)
        if console is not None:
            console.print(f"[yellow]warning:[/] {UNTRAINED_WARNING}", highlight=False)
    return model, trained


# ----------------------------------------------------------------------- LangChain
def make_llm(kb: "KnowledgeBase", model: "KBLaMModel", *, mode: str = "grounded", max_new_tokens: int = 32,
             top_k_attention: int = 3, **kwargs: Any):
    """``KBLaMLLM(kb=kb, mode=mode)`` sharing an already loaded model."""
    from .integrations.langchain import KBLaMLLM

    return KBLaMLLM(kb=kb, mode=mode, kblam_model=model, max_new_tokens=max_new_tokens,
                    top_k_attention=top_k_attention, **kwargs)


def build_chain(llm: Any, system: str | None = None):
    """``ChatPromptTemplate | llm | StrOutputParser()`` over a ``{question}`` variable."""
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate

    messages = ([("system", system)] if system else []) + [("human", "{question}")]
    return ChatPromptTemplate.from_messages(messages) | llm | StrOutputParser()


def attention_recorder():
    """A LangChain callback handler keeping the ``kb_attention`` metadata of the last answer.

    ``StrOutputParser`` keeps only the text; the attended triples travel in
    ``AIMessage.response_metadata["kb_attention"]`` and are picked up in ``on_llm_end``.
    """
    from langchain_core.callbacks import BaseCallbackHandler

    class KBAttentionRecorder(BaseCallbackHandler):
        def __init__(self) -> None:
            self.kb_attention: list[dict[str, Any]] = []
            self.response_metadata: dict[str, Any] = {}

        def on_llm_end(self, response, **kwargs: Any) -> None:  # noqa: ANN001 - LLMResult
            for generations in response.generations:
                for gen in generations:
                    message = getattr(gen, "message", None)
                    meta = dict(getattr(message, "response_metadata", None) or {})
                    self.response_metadata = meta
                    self.kb_attention = list(meta.get("kb_attention") or [])

    return KBAttentionRecorder()


# ---------------------------------------------------------------------------- demo
@dataclass
class DemoAnswer:
    question: str
    answer: str
    attended: list[dict[str, Any]] = field(default_factory=list)
    base_answer: str | None = None
    heatmap: str | None = None
    seconds: float = 0.0


@dataclass
class DemoReport:
    out_dir: str
    trained: bool
    threads: int
    mode: str
    max_new_tokens: int
    triples: list[dict[str, Any]] = field(default_factory=list)
    answers: list[DemoAnswer] = field(default_factory=list)
    kb_file: str | None = None
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _console(console: "Console | None") -> "Console":
    if console is not None:
        return console
    from rich.console import Console

    return Console()


def extract_kb(texts: Sequence[str], spacy_model: str | None = None) -> "KnowledgeBase":
    """Extract a knowledge base from ``texts`` with the spaCy :class:`TripleExtractor`."""
    from .kb.extraction import TripleExtractor

    return TripleExtractor(model=spacy_model).to_knowledge_base(list(texts))


def run_demo(out_dir: str | os.PathLike = "kblam-demo", *, questions: Sequence[str] | None = None,
             max_new_tokens: int = 32, mode: str = "grounded", compare_base: bool = True,
             corpus: str | None = None, weights: str | os.PathLike | None = None, top_k: int = 3,
             heatmaps: bool = True, threads: int | None = None, spacy_model: str | None = None,
             console: "Console | None" = None) -> DemoReport:
    """Run the demo end to end and write ``kb.json``, ``heatmap_*.png`` and ``report.json`` to ``out_dir``.

    ``corpus``: text to use instead of the bundled corpus. Returns a :class:`DemoReport`.
    """
    from rich.panel import Panel
    from rich.text import Text

    from .errors import ConfigError
    from .model.modes import check_mode

    check_mode(mode)
    if max_new_tokens <= 0:
        raise ConfigError(f"max_new_tokens must be positive, got {max_new_tokens!r}")
    if top_k <= 0:
        raise ConfigError(f"top_k must be positive, got {top_k!r}")
    questions = list(questions or DEFAULT_QUESTIONS)
    console = _console(console)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    start = time.perf_counter()
    timings: dict[str, float] = {}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    # 1. text -> triples -> KB
    texts = corpus_paragraphs(corpus)
    t0 = time.perf_counter()
    with console.status("Extracting triples with spaCy..."):
        kb = extract_kb(texts, spacy_model)
    timings["extract"] = time.perf_counter() - t0
    console.print(triples_table(kb, title=f"Knowledge base: {len(kb)} triples from {len(texts)} paragraphs"))
    kb_file = kb.save(out / "kb.json")

    # 2. model + LangChain chain
    t0 = time.perf_counter()
    with console.status("Loading SmolLM2 + MiniLM (offline)..."):
        n_threads = configure_threads(threads)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            model, trained = load_model(weights, console=console)
        manager = model.kb_manager(kb)
        tokens = manager.snapshot()
        llm = make_llm(kb, model, mode=mode, max_new_tokens=max_new_tokens, top_k_attention=top_k)
        chain = build_chain(llm)
        recorder = attention_recorder()
    timings["load"] = time.perf_counter() - t0
    report = DemoReport(out_dir=str(out), trained=trained, threads=n_threads, mode=mode,
                        max_new_tokens=max_new_tokens, triples=[t.to_dict() for t in kb], kb_file=str(kb_file))

    # 3. questions
    from .model.interpret import plot_attention_heatmap

    t_answers = t_base = t_heat = 0.0
    for i, question in enumerate(questions, 1):
        t0 = time.perf_counter()
        recorder.kb_attention = []
        answer = chain.invoke({"question": question}, config={"callbacks": [recorder]})
        t_answers += time.perf_counter() - t0
        item = DemoAnswer(question=question, answer=answer.strip(), attended=list(recorder.kb_attention)[:top_k])
        if compare_base:
            t1 = time.perf_counter()
            item.base_answer = model.generate(question, kb=None, max_new_tokens=max_new_tokens).text
            t_base += time.perf_counter() - t1
        if heatmaps:
            t1 = time.perf_counter()
            # one prefill with the knowledge tokens: attention mass per KB layer and triple
            probe = model.generate(question, kb=tokens, mode="kblam", max_new_tokens=1)
            path = out / f"heatmap_{i}.png"
            plot_attention_heatmap(probe, path, max_triples=min(12, len(kb)) or 1, title=f"Q{i}: {question}")
            item.heatmap = str(path)
            t_heat += time.perf_counter() - t1
        item.seconds = time.perf_counter() - t0
        report.answers.append(item)

        body = Text()
        body.append("KBLaM", style="bold green")
        body.append(f" ({mode}): ")
        body.append(item.answer or "(empty)")
        if item.base_answer is not None:
            body.append("\nbase model, no KB: ", style="bold red")
            body.append(item.base_answer or "(empty)")
        console.print(Panel(body, title=f"Q{i}. {question}", title_align="left"))
        if item.attended:
            console.print(attended_table(item.attended, title="attended triples"))
        else:
            console.print("[dim]  no KB attention reported[/]")
    timings.update(answers=t_answers, base=t_base, heatmaps=t_heat)

    report.seconds = time.perf_counter() - start
    report.timings = {k: round(v, 2) for k, v in timings.items()}
    (out / "report.json").write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
    if not trained:
        console.print("[yellow]Note:[/] the adapters are untrained, so the attended triples are not meaningful yet.")
    console.print(f"Wrote {kb_file}, {len(questions) if heatmaps else 0} heatmap(s) and {out / 'report.json'} "
                  f"in {report.seconds:.1f} s ({n_threads} torch thread{'s' if n_threads != 1 else ''}).")
    return report
