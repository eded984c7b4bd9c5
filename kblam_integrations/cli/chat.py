"""``kblam chat``: an interactive conversation over a KB, with in-session edits saved safely on exit."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from . import loading
from .app import CONTEXT, app
from .boundary import CLIError, guard, one_line
from .inputs import ENCODED_KB_SUFFIX, kb_for_model, load_kb_or_cache
from .options import BACKBONE_OPT, ENCODER_OPT, MODE_OPT, WEIGHTS_OPT, Mode, check_mode, check_positive
from .output import console_for, print_answer

# earlier question/answer pairs kept in the prompt
CHAT_HISTORY_TURNS = 4

CHAT_HELP = ("Commands: /add NAME | PROPERTY | VALUE, /remove NAME | PROPERTY | VALUE, /kb (list), /help, "
             "exit (or Ctrl-D).")


def _parse_triple(arg: str) -> tuple[str, str, str]:
    parts = [p.strip() for p in arg.split("|")]
    if len(parts) != 3 or not all(parts):
        raise CLIError("expected NAME | PROPERTY | VALUE")
    return parts[0], parts[1], parts[2]


@app.command(context_settings=CONTEXT)
@guard
def chat(
    kb_file: Path = typer.Argument(..., help="KB file, or an encoded KB (.safetensors)."),
    mode: Mode = MODE_OPT,
    top_k: int = typer.Option(3, "--top-k", help="How many attended triples to print per answer."),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens", help="Length limit of each answer."),
    save: bool = typer.Option(False, "--save", help="Write /add and /remove changes back to KB_FILE on exit."),
    weights: Optional[Path] = WEIGHTS_OPT,
    backbone: Optional[str] = BACKBONE_OPT,
    encoder: Optional[str] = ENCODER_OPT,
) -> None:
    """Interactive questions over a KB: one question per line, until 'exit' or end of input.

    The conversation is kept: a follow-up ("And where is it based?") is read with the
    earlier turns."""
    from ..errors import KBLaMError

    mode_value = check_mode(mode)
    check_positive(top_k, "--top-k")
    check_positive(max_new_tokens, "--max-new-tokens")
    kb = load_kb_or_cache(kb_file)  # validated before the (slow) model load
    model = loading.load_model(weights, backbone, encoder)
    manager = kb_for_model(kb_file, model, kb)
    console = console_for()
    stream = typer.get_text_stream("stdin")
    interactive = stream.isatty()
    console.print(f"[bold]kblam chat[/] over {len(manager.kb)} triple(s), mode {mode_value}. {CHAT_HELP}")
    changes: list[tuple[str, Any]] = []  # this session's edits, replayed onto the file as it is at save time
    history: list[dict[str, str]] = []  # earlier questions and answers (the last CHAT_HISTORY_TURNS)
    while True:
        if interactive:
            console.print("[bold cyan]you>[/] ", end="")
        line = stream.readline()
        if not line:
            break
        text = line.strip()
        if not text:
            continue
        if text.lower() in ("exit", "quit", "/exit", "/quit"):
            break
        try:
            if text.startswith("/"):
                cmd, _, arg = text.partition(" ")
                if cmd == "/add":
                    t = manager.kb.add(*_parse_triple(arg))
                    changes.append(("add", t))
                    console.print(f"added {t}", markup=False)
                elif cmd == "/remove":
                    t = manager.kb.remove(_parse_triple(arg))
                    changes.append(("remove", t))
                    console.print(f"removed {t}", markup=False)
                elif cmd == "/kb":
                    from ..console import triples_table

                    console.print(triples_table(manager.kb, title=f"{len(manager.kb)} triple(s)"))
                elif cmd == "/help":
                    console.print(CHAT_HELP)
                else:
                    raise CLIError(f"unknown command {cmd}; {CHAT_HELP}")
                continue
            # the KB query reads the conversation: follow-ups ("and its founder?") resolve against it
            messages = [*history[-2 * CHAT_HISTORY_TURNS:], {"role": "user", "content": text}]
            result = model.generate(messages, kb=manager, mode=mode_value, max_new_tokens=max_new_tokens)
            history = [*messages, {"role": "assistant", "content": result.text}]
            console.print("[bold green]kblam>[/] ", end="")
            print_answer(console, result, top_k)
        except (CLIError, KBLaMError) as exc:  # a bad line does not end the session
            console.print(f"[red]error:[/] {one_line(exc)}", highlight=False)
    if save and changes:
        count = _save_chat_changes(kb_file, model, changes)
        console.print(f"saved {count} triple(s) to {kb_file}")


def _replay(kb, changes: list[tuple[str, Any]]) -> None:
    """Apply a session's edits to a KB that others may have edited meanwhile (theirs are kept)."""
    for op, triple in changes:
        if op == "add":
            kb.add_many([triple], on_duplicate="replace")
        elif triple.id in kb:
            kb.remove(triple.id)


def _save_chat_changes(kb_file: Path, model, changes: list[tuple[str, Any]]) -> int:
    """Re-read KB_FILE under its edit lock and replay this session's edits: no lost update
    when another process (``kblam kb add``, another chat) edited it during the session."""
    from ..kb.persistence import file_lock, locked_edit

    if kb_file.suffix.lower() == ENCODED_KB_SUFFIX:
        with file_lock(kb_file):
            manager = model.load_kb(kb_file)
            _replay(manager.kb, changes)
            manager.save(kb_file)
            return len(manager.kb)
    with locked_edit(kb_file) as kb:
        _replay(kb, changes)
        return len(kb)
