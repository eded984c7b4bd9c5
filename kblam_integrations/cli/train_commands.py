"""Commands that train and evaluate adapters: ``kblam train`` and ``kblam eval``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from . import loading
from .app import CONTEXT, app
from .boundary import CLIError, guard
from .inputs import existing_file
from .options import BACKBONE_OPT, ENCODER_OPT, MODE_OPT, WEIGHTS_OPT, Mode, check_mode, check_positive
from .output import console_for


@app.command(context_settings=CONTEXT)
@guard
def train(
    config: Path = typer.Argument(..., help="Training config (JSON; fields of TrainConfig, phases as a list)."),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", help="Override the config's output_dir."),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue from output_dir/checkpoint if present."),
) -> None:
    """Train KBLaM's adapters and KB query heads (the backbone stays frozen)."""
    from ..errors import ConfigError
    from ..training import trainer

    existing_file(config, "training config")
    try:
        cfg = trainer.TrainConfig.load(config)
    except (TypeError, AttributeError) as exc:  # a phase with unknown fields, a JSON list...
        raise ConfigError(f"invalid training config {str(config)!r}: {exc}") from None
    if output_dir is not None:
        cfg.output_dir = str(output_dir)
    if cfg.total_steps <= 0:
        raise CLIError("the training config has no steps")
    from ..runtime import configure_threads

    configure_threads(None)
    final = trainer.train(cfg, resume=resume, progress=True)
    typer.echo(f"Trained {cfg.total_steps} step(s); weights in {final} (use with --weights {final}).")


# ---------------------------------------------------------------------------- eval
@app.command("eval", context_settings=CONTEXT)
@guard
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
    mode_value = check_mode(mode)
    check_positive(kb_size, "--kb-size")
    existing_file(file, "evaluation file")
    try:
        from ..training.evaluate import evaluate_file
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("kblam_integrations.training.evaluate"):
            raise CLIError("the evaluation module kblam_integrations.training.evaluate is not available "
                           "in this installation") from None
        raise
    except ImportError as exc:
        raise CLIError(f"cannot import the evaluation module: {exc}") from None
    model = loading.load_model(weights, backbone, encoder)
    metrics = evaluate_file(model, file, kb_size=kb_size, mode=mode_value, seed=seed)
    from rich.table import Table

    table = Table(title=f"{file} (kb size {kb_size}, {mode_value}, seed {seed})", header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in (metrics or {}).items():
        table.add_row(str(key), f"{value:.4f}" if isinstance(value, float) else str(value))
    console_for().print(table)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(metrics, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
        typer.echo(f"Wrote {out}.")
