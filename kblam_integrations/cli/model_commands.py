"""Commands that run the model on a KB: ``kblam encode`` and ``kblam ask``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import loading
from .app import CONTEXT, app
from .boundary import CLIError, guard
from .inputs import ENCODED_KB_SUFFIX, kb_for_model, load_kb, load_kb_or_cache
from .options import BACKBONE_OPT, ENCODER_OPT, MODE_OPT, WEIGHTS_OPT, Mode, check_mode, check_positive
from .output import console_for, print_answer


@app.command(context_settings=CONTEXT)
@guard
def encode(
    kb_file: Path = typer.Argument(..., help="KB file (.json, .jsonl or .graphml)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Encoded KB cache (default: KB_FILE with "
                                                                  ".safetensors)."),
    weights: Optional[Path] = WEIGHTS_OPT,
    backbone: Optional[str] = BACKBONE_OPT,
    encoder: Optional[str] = ENCODER_OPT,
) -> None:
    """Encode a KB into knowledge tokens and save them (.safetensors) for reuse by ask/chat."""
    kb = load_kb(kb_file)
    out = out if out is not None else kb_file.with_suffix(ENCODED_KB_SUFFIX)
    if out.suffix.lower() != ENCODED_KB_SUFFIX:
        raise CLIError(f"--out must end with {ENCODED_KB_SUFFIX}, got {out}")
    model = loading.load_model(weights, backbone, encoder)
    manager = model.kb_manager(kb)
    with console_for(stderr=True).status(f"Encoding {len(kb)} triple(s)..."):
        path = manager.save(out)
    typer.echo(f"Encoded {len(kb)} triple(s) into {path}.")


@app.command(context_settings=CONTEXT)
@guard
def ask(
    kb_file: Path = typer.Argument(..., help="KB file, or an encoded KB (.safetensors from `kblam encode`)."),
    question: str = typer.Argument(..., help="The question."),
    mode: Mode = MODE_OPT,
    top_k: int = typer.Option(5, "--top-k", help="How many attended triples to print."),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens", help="Length limit of the answer."),
    weights: Optional[Path] = WEIGHTS_OPT,
    backbone: Optional[str] = BACKBONE_OPT,
    encoder: Optional[str] = ENCODER_OPT,
) -> None:
    """Answer one question from a KB; print the answer and the triples it attended to."""
    mode_value = check_mode(mode)
    check_positive(top_k, "--top-k")
    check_positive(max_new_tokens, "--max-new-tokens")
    if not question.strip():
        raise CLIError("the question is empty")
    kb = load_kb_or_cache(kb_file)  # validated before the (slow) model load
    model = loading.load_model(weights, backbone, encoder)
    source = kb_for_model(kb_file, model, kb)
    result = model.generate(question, kb=source, mode=mode_value, max_new_tokens=max_new_tokens)
    print_answer(console_for(), result, top_k)
