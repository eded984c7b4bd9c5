"""Helpers shared by ``benchmarks/kb_scaling.py`` and ``benchmarks/compare.py``.

Memory: the peak resident set size is read from ``VmHWM`` in ``/proc/self/status``
(Linux). Writing ``5`` to ``/proc/self/clear_refs`` resets that peak to the current RSS,
so one process can measure the peak of each phase separately; where that is not
possible the cumulative ``resource.getrusage(...).ru_maxrss`` is used instead (and the
scripts measure each KB size in a fresh subprocess anyway).
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

ROOT = Path(__file__).resolve().parent.parent
DOCS_DIR = ROOT / "docs" / "benchmarks"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Printed by a measurement subprocess before its JSON result (the parent reads the last such line).
RESULT_PREFIX = "KBLAM_BENCH_RESULT "


# ----------------------------------------------------------------------- environment
def setup_env(threads: int | None = None) -> int:
    """Offline HF, quiet tokenizers, and the torch thread count (None: torch's default)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    if threads is not None:
        torch.set_num_threads(int(threads))
    return torch.get_num_threads()


def load_model(weights: str | None = None):
    """The given (or shipped) KBLaM weights; a seeded untrained model if none are installed.

    Returns ``(model, trained)``; see :mod:`kblam_integrations.model.shipped`.
    """
    import warnings

    from kblam_integrations.model.shipped import load_weights
    from kblam_integrations.runtime import quiet_loading

    with warnings.catch_warnings(), quiet_loading():
        warnings.simplefilter("ignore")
        model, trained = load_weights(weights)
    model.eval()
    return model, trained


# ---------------------------------------------------------------------------- memory
def rss_mb() -> float:
    """Current resident set size of this process (MiB)."""
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:  # pragma: no cover
        return _status_kb("VmRSS") / 1024


def _status_kb(field: str) -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return float(line.split()[1])
    raise KeyError(field)


def reset_peak() -> bool:
    """Reset the peak RSS to the current RSS (Linux >= 4.0); False where not possible."""
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb(at_least: float = 0.0) -> float:
    """Peak resident set size since the last :func:`reset_peak` (else since start), MiB.

    The kernel batches RSS counters per CPU, so ``VmHWM`` can read a few hundred KiB
    below an RSS read moments earlier; a peak is never below an RSS seen in the same
    window, so pass that reading (e.g. the base taken after the reset) as ``at_least``.
    """
    try:
        peak = _status_kb("VmHWM") / 1024
    except (OSError, KeyError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return max(peak, rss_mb(), at_least)


# ---------------------------------------------------------------------------- timing
def median_time(fn: Callable[[], Any], repeats: int = 3, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs after ``warmup`` untimed runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# ------------------------------------------------------------------ subprocess runs
def run_subprocess(script: Path, args: Sequence[str], timeout: float | None = None) -> dict:
    """Run ``python script args`` and return the JSON it printed after :data:`RESULT_PREFIX`."""
    cmd = [sys.executable, str(script), *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=str(ROOT))
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-15:]
    raise RuntimeError(f"measurement subprocess failed (exit {proc.returncode}): {' '.join(cmd)}\n" + "\n".join(tail))


def emit_result(result: dict) -> None:
    """Hand a result to the parent process (see :func:`run_subprocess`)."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


# ----------------------------------------------------------------------------- output
def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != 0 and abs(value) < 10 ** -digits:
            return f"{value:.1e}"
        return f"{value:.{digits}f}"
    return str(value)


def print_table(rows: Iterable[dict], columns: Sequence[tuple[str, str]], title: str | None = None) -> None:
    """Print ``rows`` with rich; ``columns`` are ``(key, header)`` pairs."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, header_style="bold")
    for _, header in columns:
        table.add_column(header, justify="right")
    for row in rows:
        table.add_row(*[fmt(row.get(key)) for key, _ in columns])
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=200)
    console.print(table)


def markdown_table(rows: Iterable[dict], columns: Sequence[tuple[str, str]]) -> str:
    lines = ["| " + " | ".join(h for _, h in columns) + " |",
             "|" + "|".join("---:" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(fmt(row.get(k)) for k, _ in columns) + " |")
    return "\n".join(lines) + "\n"


def write_json(path: Path, data: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def machine_info() -> dict:
    import platform

    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
            "threads": torch.get_num_threads(), "machine": platform.machine()}
    try:
        import psutil

        info["ram_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:  # pragma: no cover
        pass
    return info


# ------------------------------------------------------------------------- prompts
def fact_line(t: Any) -> str:
    """One triple as an in-context sentence: ``the {property} of {name} is {value}.``"""
    return f"the {t.property} of {t.name} is {t.value}."


def icl_prompt(triples: Sequence[Any], question: str) -> str:
    """The user message of the in-context baseline (same layout as KBLaM's grounded mode)."""
    facts = "\n".join(fact_line(t) for t in triples)
    return f"Facts:\n{facts}\n\nQuestion: {question}"


def context_limit(model) -> int:
    cfg = model.backbone.config
    return int(getattr(cfg, "max_position_embeddings", None) or 2048)


def supports_logits_to_keep(backbone) -> bool:
    """Whether ``backbone.forward`` takes ``logits_to_keep`` (what generate() passes as 1 on prefill)."""
    import inspect

    return "logits_to_keep" in inspect.signature(backbone.forward).parameters
