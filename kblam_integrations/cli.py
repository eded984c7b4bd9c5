"""The ``kblam`` command line.

Exit codes: 0 on success, 1 on any user error (bad file, bad value, unknown option,
missing module...) with a one-line message on stderr and never a traceback; 130 on
Ctrl-C. Heavy modules (torch, transformers, spaCy, LangChain) are imported inside the
commands, so ``kblam --help`` is fast. Set ``KBLAM_DEBUG=1`` to see tracebacks of
unexpected errors.
"""

from __future__ import annotations

import functools
import json
import os
import re
import runpy
import sys
from enum import Enum
from pathlib import Path
from typing import Any, Callable, List, Optional, TypeVar

import typer
from typer.core import TyperGroup

try:  # typer >= 0.2x vendors its own click
    from typer._click import exceptions as _click_exc
except ImportError:  # pragma: no cover - older typer runs on the click package
    from click import exceptions as _click_exc

from .kb.persistence import KB_FILE_SUFFIXES

F = TypeVar("F", bound=Callable[..., Any])

ENCODED_SUFFIX = ".safetensors"
# `kblam chat` keeps this many earlier question/answer pairs in the prompt
CHAT_HISTORY_TURNS = 4


class CLIError(Exception):
    """A user error reported as one line, exit code 1."""


class Mode(str, Enum):
    kblam = "kblam"
    grounded = "grounded"


def _one_line(message: object) -> str:
    return " ".join(str(message).split())


def _fail(message: object, code: int = 1) -> "typer.Exit":
    typer.echo(f"Error: {_one_line(message)}", err=True)
    return typer.Exit(code)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        return f"{exc.strerror}: {exc.filename}"
    if isinstance(exc, UnicodeDecodeError):
        return f"not a UTF-8 text file ({exc.reason})"
    return str(exc) or type(exc).__name__


def _guard(fn: F) -> F:
    """Command boundary: user errors become a one-line message and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from .errors import KBLaMError

        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except CLIError as exc:
            raise _fail(exc) from None
        except KBLaMError as exc:
            raise _fail(exc) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _fail(_describe(exc)) from None
        except KeyboardInterrupt:
            raise _fail("interrupted", 130) from None
        except Exception as exc:  # noqa: BLE001 - the boundary: no traceback for the user
            if os.environ.get("KBLAM_DEBUG"):
                raise
            raise _fail(f"{type(exc).__name__}: {exc} (set KBLAM_DEBUG=1 for the traceback)") from None

    return wrapper  # type: ignore[return-value]


class KBLaMGroup(TyperGroup):
    """Turns usage errors (click's exit 2 and boxed message) into one line and exit code 1."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # noqa: ANN001
        no_args_help = getattr(_click_exc, "NoArgsIsHelpError", ())
        try:
            rv = super().main(args=args, prog_name=prog_name, complete_var=complete_var, standalone_mode=False,
                              **extra)
        except no_args_help as exc:  # `kblam` / `kblam kb` alone: the help, not an error
            typer.echo(exc.format_message())
            rv = 0
        except _click_exc.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            typer.echo(f"Error: {_one_line(exc.format_message())}{hint}", err=True)
            rv = 1
        except typer.TyperException as exc:
            typer.echo(f"Error: {_one_line(exc.format_message())}", err=True)
            rv = 1
        except typer.Abort:
            typer.echo("Aborted.", err=True)
            rv = 1
        code = rv if isinstance(rv, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


CONTEXT = {"help_option_names": ["-h", "--help"]}

app = typer.Typer(
    name="kblam",
    cls=KBLaMGroup,
    help="KBLaM: answer questions from a knowledge base of (name, property, value) triples, "
         "with no retrieval chain and no KB in the prompt.",
    no_args_is_help=True,
    context_settings=CONTEXT,
    pretty_exceptions_enable=False,
    add_completion=False,
)
kb_app = typer.Typer(help="Show and edit a knowledge-base file (.json, .jsonl or .graphml).",
                     no_args_is_help=True, context_settings=CONTEXT)
bench_app = typer.Typer(help="Run the benchmark scripts in benchmarks/ (arguments are passed through).",
                        no_args_is_help=True, context_settings=CONTEXT)
app.add_typer(kb_app, name="kb")
app.add_typer(bench_app, name="bench")


# --------------------------------------------------------------------------- helpers
def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def _version_callback(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(f"kblam {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    threads: Optional[int] = typer.Option(
        None, "--threads", min=1, envvar="KBLAM_NUM_THREADS",
        help="torch CPU threads (default: the idle cores, see kblam_integrations.demo.auto_threads)."),
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True,
                                 help="Show the version and exit."),
) -> None:
    """KBLaM command line. Everything runs offline; nothing is downloaded."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if threads is not None:
        os.environ["KBLAM_NUM_THREADS"] = str(threads)


def _existing_file(path: Path, what: str = "file") -> Path:
    if not path.exists():
        raise CLIError(f"{what} not found: {path}")
    if path.is_dir():
        raise CLIError(f"{what} is a directory, not a file: {path}")
    return path


def _check_kb_suffix(path: Path) -> None:
    if path.suffix.lower() not in KB_FILE_SUFFIXES:
        raise CLIError(f"unsupported KB file type {path.suffix or '(none)'!r} for {path}; "
                       f"use one of {', '.join(KB_FILE_SUFFIXES)}")


def _load_kb(path: Path):
    from .kb import KnowledgeBase

    _existing_file(path, "KB file")
    _check_kb_suffix(path)
    return KnowledgeBase.load(path)


def _check_mode(mode: Any) -> str:
    value = mode.value if isinstance(mode, Enum) else str(mode)
    if value not in ("kblam", "grounded"):
        raise CLIError(f"unknown mode {value!r}; use 'kblam' or 'grounded'")
    return value


def _check_positive(value: int, name: str) -> int:
    if value is None or value <= 0:
        raise CLIError(f"{name} must be a positive integer, got {value}")
    return value


def _load_model(weights: Optional[Path], backbone: Optional[str], encoder: Optional[str], console=None):
    """Load the model (shipped weights, else an untrained one with a warning). Tests replace this."""
    import warnings

    from .demo import configure_threads, load_model

    if weights is not None:
        _check_weights(weights)
    configure_threads(None)
    console = console or _console(stderr=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with console.status("Loading model (offline)..."):
            model, _trained = load_model(weights, backbone=backbone, encoder=encoder, console=console)
    return model


def _check_weights(weights: Path) -> None:
    if not weights.is_dir():
        raise CLIError(f"KBLaM checkpoint directory not found: {weights}")
    _existing_file(weights / "kblam_config.json", "KBLaM checkpoint config")


def _load_kb_or_cache(path: Path):
    """The KB of a KB file, or None for an encoded KB cache (.safetensors; read once the model is loaded)."""
    _existing_file(path, "KB file")
    if path.suffix.lower() == ENCODED_SUFFIX:
        return None
    return _load_kb(path)


def _kb_for_model(path: Path, model, kb=None):
    """A KBManager over ``kb``, or over the encoded cache at ``path`` (reused without re-encoding)."""
    if kb is None:
        from .encoding.manager import KBManager

        return KBManager.load(path, model.encoder)
    return model.kb_manager(kb)


WEIGHTS_OPT = typer.Option(None, "--weights", help="KBLaM checkpoint directory (default: the shipped weights; "
                                                   "an untrained model with a warning if there are none).")
BACKBONE_OPT = typer.Option(None, "--backbone", help="Backbone: HF id in the local cache, directory or .gguf file.")
ENCODER_OPT = typer.Option(None, "--encoder", help="Sentence encoder: HF id in the local cache or directory.")
MODE_OPT = typer.Option(Mode.grounded, "--mode", help="kblam: pure KBLaM attention; grounded: attention picks the "
                                                    "top triples, whose text then grounds the answer.")


def _print_answer(console, result, top_k: int) -> None:
    from .demo import attended_table

    console.print(result.text or "(empty answer)", markup=False, highlight=False)
    top = result.top_k(top_k)
    if not top and result.triples:
        console.print(f"[dim]no triple outweighed the null token (null score {result.null_score:.3f}): "
                      "the KB does not seem to hold the answer[/]")
    if top:
        rows = [{"score": s.score, "name": s.triple.name, "property": s.triple.property, "value": s.triple.value}
                for s in top]
        console.print(attended_table(rows, title="top attended triples"))


# ------------------------------------------------------------------------- extract
TEXT_PATTERNS = ("*.txt", "*.md")


def _looks_like_path(arg: str) -> bool:
    """A string without spaces that has a path separator or a file extension (``notes.txt``)."""
    if not arg or any(c.isspace() for c in arg):
        return False
    return os.sep in arg or arg.startswith("~") or bool(re.search(r"\.[A-Za-z][A-Za-z0-9]{0,7}$", arg))


@app.command(context_settings=CONTEXT)
@_guard
def extract(
    inputs: List[str] = typer.Argument(..., metavar="TEXT_OR_FILE...",
                                       help="Text, a UTF-8 text file, a directory (its *.txt and *.md files) or '-' (stdin)."),
    out: Path = typer.Option(Path("kb.json"), "--out", "-o", help="KB file to write (.json, .jsonl or .graphml)."),
    append: bool = typer.Option(False, "--append", help="Add to the triples already in --out instead of replacing it."),
    spacy_model: Optional[str] = typer.Option(None, "--spacy-model", help="spaCy pipeline (default: en_core_web_sm)."),
    show: bool = typer.Option(True, "--show/--no-show", help="Print the extracted triples."),
) -> None:
    """Extract (name, property, value) triples from text or files into a KB file."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    _check_kb_suffix(out)
    sources: list[tuple[str, str]] = []
    for arg in inputs:
        if not arg.strip():  # Path("") is "." : an empty argument would ingest the working directory
            raise CLIError("empty input argument: pass text, a file, a directory or '-' (stdin)")
        if arg == "-":
            sources.append(("<stdin>", typer.get_text_stream("stdin").read()))
            continue
        path = Path(arg).expanduser()
        if path.is_file():
            sources.append((str(path), path.read_text(encoding="utf-8")))
        elif path.is_dir():
            files = sorted({f for pattern in TEXT_PATTERNS for f in path.rglob(pattern) if f.is_file()})
            if not files:
                raise CLIError(f"no {' or '.join(TEXT_PATTERNS)} files in the directory {arg}")
            sources.extend((str(f), f.read_text(encoding="utf-8")) for f in files)
        elif _looks_like_path(arg):
            raise CLIError(f"file not found: {arg}")
        else:
            sources.append((f"<text {len(sources) + 1}>", arg))
    if not any(text.strip() for _, text in sources):
        raise CLIError("nothing to extract: the input text is empty")

    import warnings

    from .demo import triples_table
    from .kb import KnowledgeBase
    from .kb.extraction import TripleExtractor, language_warning
    from .kb.persistence import file_lock, locked_edit

    console = _console()
    if append and out.exists():
        _load_kb(out)  # a bad --out fails now, not after the (slow) extraction
    extractor = TripleExtractor(model=spacy_model)
    found = KnowledgeBase()
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=_console(stderr=True), transient=True) as progress:
        task = progress.add_task("Extracting", total=len(sources))
        for name, text in sources:
            progress.update(task, description=f"Extracting {name[:40]}")
            with warnings.catch_warnings():  # reported below as one readable line
                warnings.simplefilter("ignore", UserWarning)
                triples = extractor.extract(text, doc_id=name)
            found.add_many(triples)
            if not triples and (hint := language_warning(text)):
                console.print(f"[yellow]warning:[/] {name}: {hint}", markup=True, highlight=False)
            progress.advance(task)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not len(found) and not append:
        # never replace a KB (or create an empty one) because the extractor found nothing
        raise CLIError(f"no triples found in {len(sources)} input(s); {out} was not written (the extractor "
                       "wants simple declarative English sentences such as 'X was founded by Y.')")
    if append:
        with locked_edit(out, create=True) as kb:  # read under the lock: concurrent edits are kept
            before = len(kb)
            kb.add_many(found)
            added = len(kb) - before
    else:
        with file_lock(out):  # no edit of the old file may interleave with its replacement
            kb, added = found, len(found)
            kb.save(out)
    saved = out
    if show and len(kb):
        console.print(triples_table(kb, title=str(saved)))
    if added == 0:
        console.print("[yellow]warning:[/] no new triples found (the extractor wants simple declarative "
                      "sentences such as 'X was founded by Y.').")
    console.print(f"Extracted {added} new triple(s) from {len(sources)} input(s); {len(kb)} in {saved}.")


# ------------------------------------------------------------------------------ kb
@kb_app.command("show", context_settings=CONTEXT)
@_guard
def kb_show(
    kb_file: Path = typer.Argument(..., help="KB file (.json, .jsonl or .graphml)."),
    name: Optional[str] = typer.Option(None, "--name", help="Only triples about this entity."),
    property: Optional[str] = typer.Option(None, "--property", help="Only triples with this property."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Show at most this many triples."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List the triples of a KB file."""
    from .demo import triples_table
    from .kb import KnowledgeBase

    kb = _load_kb(kb_file)
    view = KnowledgeBase(kb.find(name=name, property=property)) if (name or property) else kb
    if as_json:
        rows = [dict(t.to_dict(), id=t.id) for t in view][:limit]
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    console = _console()
    shown = len(view) if limit is None else min(limit, len(view))
    console.print(triples_table(view, title=f"{kb_file}: {shown} of {len(view)} triple(s)", limit=limit))


@kb_app.command("add", context_settings=CONTEXT)
@_guard
def kb_add(
    kb_file: Path = typer.Argument(..., help="KB file to edit."),
    name: str = typer.Argument(..., help="Entity name, e.g. 'Veltrano Dynamics'."),
    property: str = typer.Argument(..., help="Property, e.g. 'founder'."),
    value: str = typer.Argument(..., help="Value, e.g. 'Marisol Okonkwo'."),
    create: bool = typer.Option(False, "--create", help="Create the KB file if it does not exist."),
) -> None:
    """Add one triple to a KB file (under the file's edit lock: concurrent adds are all kept)."""
    from .kb import Triple
    from .kb.persistence import locked_edit

    _check_kb_suffix(kb_file)
    triple = Triple(name, property, value)  # a bad triple fails before the file is locked
    if kb_file.exists():
        _existing_file(kb_file, "KB file")
    elif create:
        kb_file.parent.mkdir(parents=True, exist_ok=True)
    else:
        raise CLIError(f"KB file not found: {kb_file} (use --create to start a new one)")
    with locked_edit(kb_file, create=create, on_duplicate="error") as kb:
        triple = kb.add(triple)
        count = len(kb)
    typer.echo(f"Added {triple} [{triple.id}]; {count} triple(s) in {kb_file}.")


@kb_app.command("remove", context_settings=CONTEXT)
@_guard
def kb_remove(
    kb_file: Path = typer.Argument(..., help="KB file to edit."),
    name: str = typer.Argument(..., help="Entity name."),
    property: str = typer.Argument(..., help="Property."),
    value: str = typer.Argument(..., help="Value."),
) -> None:
    """Remove one triple from a KB file (under the file's edit lock)."""
    from .kb.persistence import locked_edit

    _existing_file(kb_file, "KB file")
    _check_kb_suffix(kb_file)
    with locked_edit(kb_file) as kb:
        triple = kb.remove((name, property, value))
        count = len(kb)
    typer.echo(f"Removed {triple}; {count} triple(s) left in {kb_file}.")


# -------------------------------------------------------------------------- encode
@app.command(context_settings=CONTEXT)
@_guard
def encode(
    kb_file: Path = typer.Argument(..., help="KB file (.json, .jsonl or .graphml)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Encoded KB cache (default: KB_FILE with "
                                                                  ".safetensors)."),
    weights: Optional[Path] = WEIGHTS_OPT,
    backbone: Optional[str] = BACKBONE_OPT,
    encoder: Optional[str] = ENCODER_OPT,
) -> None:
    """Encode a KB into knowledge tokens and save them (.safetensors) for reuse by ask/chat."""
    kb = _load_kb(kb_file)
    out = out if out is not None else kb_file.with_suffix(ENCODED_SUFFIX)
    if out.suffix.lower() != ENCODED_SUFFIX:
        raise CLIError(f"--out must end with {ENCODED_SUFFIX}, got {out}")
    model = _load_model(weights, backbone, encoder)
    manager = model.kb_manager(kb)
    with _console(stderr=True).status(f"Encoding {len(kb)} triple(s)..."):
        path = manager.save(out)
    typer.echo(f"Encoded {len(kb)} triple(s) into {path}.")


# ----------------------------------------------------------------------------- ask
@app.command(context_settings=CONTEXT)
@_guard
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
    mode_value = _check_mode(mode)
    _check_positive(top_k, "--top-k")
    _check_positive(max_new_tokens, "--max-new-tokens")
    if not question.strip():
        raise CLIError("the question is empty")
    kb = _load_kb_or_cache(kb_file)  # validated before the (slow) model load
    model = _load_model(weights, backbone, encoder)
    source = _kb_for_model(kb_file, model, kb)
    result = model.generate(question, kb=source, mode=mode_value, max_new_tokens=max_new_tokens)
    _print_answer(_console(), result, top_k)


# ---------------------------------------------------------------------------- chat
CHAT_HELP = ("Commands: /add NAME | PROPERTY | VALUE, /remove NAME | PROPERTY | VALUE, /kb (list), /help, "
             "exit (or Ctrl-D).")


def _parse_triple(arg: str) -> tuple[str, str, str]:
    parts = [p.strip() for p in arg.split("|")]
    if len(parts) != 3 or not all(parts):
        raise CLIError("expected NAME | PROPERTY | VALUE")
    return parts[0], parts[1], parts[2]


@app.command(context_settings=CONTEXT)
@_guard
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
    from .errors import KBLaMError

    mode_value = _check_mode(mode)
    _check_positive(top_k, "--top-k")
    _check_positive(max_new_tokens, "--max-new-tokens")
    kb = _load_kb_or_cache(kb_file)  # validated before the (slow) model load
    model = _load_model(weights, backbone, encoder)
    manager = _kb_for_model(kb_file, model, kb)
    console = _console()
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
                    from .demo import triples_table

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
            _print_answer(console, result, top_k)
        except (CLIError, KBLaMError) as exc:  # a bad line does not end the session
            console.print(f"[red]error:[/] {_one_line(exc)}", highlight=False)
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
    from .kb.persistence import file_lock, locked_edit

    if kb_file.suffix.lower() == ENCODED_SUFFIX:
        from .encoding.manager import KBManager

        with file_lock(kb_file):
            manager = KBManager.load(kb_file, model.encoder)
            _replay(manager.kb, changes)
            manager.save(kb_file)
            return len(manager.kb)
    with locked_edit(kb_file) as kb:
        _replay(kb, changes)
        return len(kb)


# --------------------------------------------------------------------------- train
@app.command(context_settings=CONTEXT)
@_guard
def train(
    config: Path = typer.Argument(..., help="Training config (JSON; fields of TrainConfig, phases as a list)."),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", help="Override the config's output_dir."),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue from output_dir/checkpoint if present."),
) -> None:
    """Train KBLaM's adapters and KB query heads (the backbone stays frozen)."""
    from .errors import ConfigError
    from .training import trainer

    _existing_file(config, "training config")
    try:
        cfg = trainer.TrainConfig.load(config)
    except (TypeError, AttributeError) as exc:  # a phase with unknown fields, a JSON list...
        raise ConfigError(f"invalid training config {str(config)!r}: {exc}") from None
    if output_dir is not None:
        cfg.output_dir = str(output_dir)
    if cfg.total_steps <= 0:
        raise CLIError("the training config has no steps")
    from .demo import configure_threads

    configure_threads(None)
    final = trainer.train(cfg, resume=resume, progress=True)
    typer.echo(f"Trained {cfg.total_steps} step(s); weights in {final} (use with --weights {final}).")


# ---------------------------------------------------------------------------- eval
@app.command("eval", context_settings=CONTEXT)
@_guard
def evaluate(
    file: Path = typer.Argument(..., help="Evaluation questions file."),
    kb_size: int = typer.Option(..., "--kb-size", help="Triples in the KB each question is asked against."),
    mode: Mode = MODE_OPT,
    seed: int = typer.Option(0, "--seed", help="Random seed (KB sampling)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the metrics as JSON here."),
    weights: Optional[Path] = WEIGHTS_OPT,
    backbone: Optional[str] = BACKBONE_OPT,
    encoder: Optional[str] = ENCODER_OPT,
) -> None:
    """Evaluate a model on a question file (kblam_integrations.training.evaluate)."""
    mode_value = _check_mode(mode)
    _check_positive(kb_size, "--kb-size")
    _existing_file(file, "evaluation file")
    try:
        from .training.evaluate import evaluate_file
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("kblam_integrations.training.evaluate"):
            raise CLIError("the evaluation module kblam_integrations.training.evaluate is not available "
                           "in this installation") from None
        raise
    except ImportError as exc:
        raise CLIError(f"cannot import the evaluation module: {exc}") from None
    model = _load_model(weights, backbone, encoder)
    metrics = evaluate_file(model, file, kb_size=kb_size, mode=mode_value, seed=seed)
    from rich.table import Table

    table = Table(title=f"{file} (kb size {kb_size}, {mode_value}, seed {seed})", header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in (metrics or {}).items():
        table.add_row(str(key), f"{value:.4f}" if isinstance(value, float) else str(value))
    _console().print(table)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(metrics, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
        typer.echo(f"Wrote {out}.")


# --------------------------------------------------------------------------- bench
def benchmarks_dir() -> Path:
    """``$KBLAM_BENCHMARKS_DIR``, else ``benchmarks/`` in the current directory or the source checkout."""
    env = os.environ.get("KBLAM_BENCHMARKS_DIR")
    if env:
        return Path(env)
    for candidate in (Path.cwd() / "benchmarks", Path(__file__).resolve().parent.parent / "benchmarks"):
        if candidate.is_dir():
            return candidate
    return Path.cwd() / "benchmarks"


def _run_benchmark(name: str, args: list[str]) -> None:
    script = benchmarks_dir() / f"{name}.py"
    if not script.is_file():
        raise CLIError(f"benchmark script not found: {script} (benchmarks live in the source checkout; "
                       "set KBLAM_BENCHMARKS_DIR)")
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    sys.argv = [str(script), *args]
    sys.path.insert(0, str(script.parent))
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exc:
        code = exc.code
        if code not in (None, 0):
            if isinstance(code, int):
                raise typer.Exit(code) from None
            raise _fail(code) from None
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path


BENCH_CONTEXT = {**CONTEXT, "allow_extra_args": True, "ignore_unknown_options": True,
                 "help_option_names": ["-h"]}


BENCHMARKS = {
    "compare": "KBLaM vs. a faiss RAG baseline with grounded mode's answer step (and in-context KB): "
               "accuracy with 95% intervals, latency, memory, one run (benchmarks/compare.py).",
    "scaling": "Memory and latency as the KB grows (benchmarks/kb_scaling.py).",
    "eval": "Retrieval/answer/refusal sweep of the shipped weights (benchmarks/eval_sweep.py).",
    "extraction": "Precision/recall of the spaCy triple extractor on the gold set (benchmarks/extraction.py).",
    "kernels": "KB attention kernels at one KB size: streamed fp32 vs fused flash (benchmarks/kb_attention_kernels.py).",
    "conversation": "Follow-up and two-fact questions in dialogues: KBLaM vs RAG on the last message and RAG with "
                    "a condense step (benchmarks/conversation.py).",
}


_BENCH_SCRIPTS = {"scaling": "kb_scaling", "eval": "eval_sweep", "kernels": "kb_attention_kernels"}


def _add_bench_command(name: str, summary: str) -> None:
    def command(ctx: typer.Context) -> None:
        _run_benchmark(_BENCH_SCRIPTS.get(name, name), list(ctx.args))

    command.__name__ = f"bench_{name}"
    command.__doc__ = f"{summary} Arguments after the name go to the script ('--help' included); -h is this help."
    bench_app.command(name, context_settings=BENCH_CONTEXT)(_guard(command))


for _name, _summary in BENCHMARKS.items():
    _add_bench_command(_name, _summary)


# ---------------------------------------------------------------------------- demo
@app.command(context_settings=CONTEXT)
@_guard
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
    from .demo import run_demo

    mode_value = _check_mode(mode)
    _check_positive(max_new_tokens, "--max-new-tokens")
    _check_positive(top_k, "--top-k")
    text = _existing_file(corpus, "corpus file").read_text(encoding="utf-8") if corpus is not None else None
    if text is not None and not text.strip():
        raise CLIError(f"the corpus file {corpus} is empty")
    if weights is not None:
        _check_weights(weights)
    if any(not q.strip() for q in question or []):
        raise CLIError("empty --question")
    env_threads = os.environ.get("KBLAM_NUM_THREADS")
    run_demo(out_dir, questions=question or None, max_new_tokens=max_new_tokens, mode=mode_value,
             compare_base=base, corpus=text, weights=weights, top_k=top_k, heatmaps=heatmaps,
             threads=int(env_threads) if env_threads else None, console=_console())


if __name__ == "__main__":  # pragma: no cover
    app()
