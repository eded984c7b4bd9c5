"""``kblam bench NAME``: run a script of ``benchmarks/`` in this process, its arguments passed through."""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

import typer

from .app import CONTEXT, bench_app
from .boundary import CLIError, fail, guard


def benchmarks_dir() -> Path:
    """``$KBLAM_BENCHMARKS_DIR``, else ``benchmarks/`` in the current directory or the source checkout."""
    env = os.environ.get("KBLAM_BENCHMARKS_DIR")
    if env:
        return Path(env)
    for candidate in (Path.cwd() / "benchmarks", Path(__file__).resolve().parents[2] / "benchmarks"):
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
            raise fail(code) from None
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
    bench_app.command(name, context_settings=BENCH_CONTEXT)(guard(command))


for _name, _summary in BENCHMARKS.items():
    _add_bench_command(_name, _summary)
