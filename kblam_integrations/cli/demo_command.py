"""``kblam demo``: the offline end-to-end demo (:mod:`kblam_integrations.demo`) behind checked options."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

import typer

from .app import CONTEXT, app
from .boundary import CLIError, guard
from .inputs import check_weights, existing_file
from .options import MODE_OPT, WEIGHTS_OPT, Mode, check_mode, check_positive
from .output import console_for


@app.command(context_settings=CONTEXT)
@guard
def demo(
    out_dir: Path = typer.Option(Path("kblam-demo"), "--out-dir", help="Where kb.json, heatmaps and report.json go."),
    question: Optional[List[str]] = typer.Option(None, "--question", "-q",
                                                 help="Ask this instead of the built-in questions (repeatable)."),
    corpus: Optional[Path] = typer.Option(None, "--corpus", help="Text file to use instead of the bundled corpus."),
    mode: Mode = MODE_OPT,
    max_new_tokens: int = typer.Option(32, "--max-new-tokens", help="Length limit of each answer."),
    top_k: int = typer.Option(3, "--top-k", help="Attended triples to print per answer."),
    base: bool = typer.Option(True, "--base/--no-base", help="Compare with the base model without the KB."),
    heatmaps: bool = typer.Option(True, "--heatmaps/--no-heatmaps", help="Save attention heatmap PNGs."),
    weights: Optional[Path] = WEIGHTS_OPT,
) -> None:
    """Offline demo: bundled text -> spaCy triples -> KB -> LangChain answers with attended triples."""
    from ..demo import run_demo

    mode_value = check_mode(mode)
    check_positive(max_new_tokens, "--max-new-tokens")
    check_positive(top_k, "--top-k")
    text = existing_file(corpus, "corpus file").read_text(encoding="utf-8") if corpus is not None else None
    if text is not None and not text.strip():
        raise CLIError(f"the corpus file {corpus} is empty")
    check_weights(weights)
    if any(not q.strip() for q in question or []):
        raise CLIError("empty --question")
    env_threads = os.environ.get("KBLAM_NUM_THREADS")
    run_demo(out_dir, questions=question or None, max_new_tokens=max_new_tokens, mode=mode_value,
             compare_base=base, corpus=text, weights=weights, top_k=top_k, heatmaps=heatmaps,
             threads=int(env_threads) if env_threads else None, console=console_for())
