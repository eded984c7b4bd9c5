"""The ``kblam`` Typer application, its ``kb``/``bench`` sub-apps and the global options.

Commands register themselves on these apps from their own modules.
"""

from __future__ import annotations

import os
from typing import Optional

import typer

from .boundary import KBLaMGroup

__all__ = ["CONTEXT", "app", "bench_app", "kb_app", "main"]

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


def _version_callback(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"kblam {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    threads: Optional[int] = typer.Option(
        None, "--threads", min=1, envvar="KBLAM_NUM_THREADS",
        help="torch CPU threads (default: the idle cores, see kblam_integrations.runtime.auto_threads)."),
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True,
                                 help="Show the version and exit."),
) -> None:
    """KBLaM command line. Everything runs offline; nothing is downloaded."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if threads is not None:
        os.environ["KBLAM_NUM_THREADS"] = str(threads)
