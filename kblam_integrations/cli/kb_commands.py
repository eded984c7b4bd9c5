"""Commands that build and edit KB files: ``kblam extract`` and ``kblam kb show|add|remove``.

Edits run under the KB file's edit lock, so concurrent commands never lose each other's changes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from .app import CONTEXT, app, kb_app
from .boundary import CLIError, guard
from .inputs import check_kb_suffix, existing_file, load_kb, read_sources
from .output import console_for


@app.command(context_settings=CONTEXT)
@guard
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

    check_kb_suffix(out)
    sources = read_sources(inputs)
    if not any(text.strip() for _, text in sources):
        raise CLIError("nothing to extract: the input text is empty")

    import warnings

    from ..console import triples_table
    from ..kb import KnowledgeBase
    from ..kb.extraction import TripleExtractor, language_warning
    from ..kb.persistence import file_lock, locked_edit

    console = console_for()
    if append and out.exists():
        load_kb(out)  # a bad --out fails now, not after the (slow) extraction
    extractor = TripleExtractor(model=spacy_model)
    found = KnowledgeBase()
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console_for(stderr=True), transient=True) as progress:
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


@kb_app.command("show", context_settings=CONTEXT)
@guard
def kb_show(
    kb_file: Path = typer.Argument(..., help="KB file (.json, .jsonl or .graphml)."),
    name: Optional[str] = typer.Option(None, "--name", help="Only triples about this entity."),
    property: Optional[str] = typer.Option(None, "--property", help="Only triples with this property."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Show at most this many triples."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List the triples of a KB file."""
    from ..console import triples_table
    from ..kb import KnowledgeBase

    kb = load_kb(kb_file)
    view = KnowledgeBase(kb.find(name=name, property=property)) if (name or property) else kb
    if as_json:
        rows = [dict(t.to_dict(), id=t.id) for t in view][:limit]
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    console = console_for()
    shown = len(view) if limit is None else min(limit, len(view))
    console.print(triples_table(view, title=f"{kb_file}: {shown} of {len(view)} triple(s)", limit=limit))


@kb_app.command("add", context_settings=CONTEXT)
@guard
def kb_add(
    kb_file: Path = typer.Argument(..., help="KB file to edit."),
    name: str = typer.Argument(..., help="Entity name, e.g. 'Veltrano Dynamics'."),
    property: str = typer.Argument(..., help="Property, e.g. 'founder'."),
    value: str = typer.Argument(..., help="Value, e.g. 'Marisol Okonkwo'."),
    create: bool = typer.Option(False, "--create", help="Create the KB file if it does not exist."),
) -> None:
    """Add one triple to a KB file (under the file's edit lock: concurrent adds are all kept)."""
    from ..kb import Triple
    from ..kb.persistence import locked_edit

    check_kb_suffix(kb_file)
    triple = Triple(name, property, value)  # a bad triple fails before the file is locked
    if kb_file.exists():
        existing_file(kb_file, "KB file")
    elif create:
        kb_file.parent.mkdir(parents=True, exist_ok=True)
    else:
        raise CLIError(f"KB file not found: {kb_file} (use --create to start a new one)")
    with locked_edit(kb_file, create=create, on_duplicate="error") as kb:
        triple = kb.add(triple)
        count = len(kb)
    typer.echo(f"Added {triple} [{triple.id}]; {count} triple(s) in {kb_file}.")


@kb_app.command("remove", context_settings=CONTEXT)
@guard
def kb_remove(
    kb_file: Path = typer.Argument(..., help="KB file to edit."),
    name: str = typer.Argument(..., help="Entity name."),
    property: str = typer.Argument(..., help="Property."),
    value: str = typer.Argument(..., help="Value."),
) -> None:
    """Remove one triple from a KB file (under the file's edit lock)."""
    from ..kb.persistence import locked_edit

    existing_file(kb_file, "KB file")
    check_kb_suffix(kb_file)
    with locked_edit(kb_file) as kb:
        triple = kb.remove((name, property, value))
        count = len(kb)
    typer.echo(f"Removed {triple}; {count} triple(s) left in {kb_file}.")
