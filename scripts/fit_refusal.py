"""Fit the refusal classifier of a trained checkpoint (what `kblam train` does after a cached phase).

    .venv/bin/python scripts/fit_refusal.py configs/train_default.json runs/default/final

Uses the training pools of the config (cached features in output_dir/cache) and the same
seed as the trainer, so the result equals the trainer's own fit for the same weights.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(config_path: str, checkpoint: str) -> None:
    from kblam_integrations.model.kblam_model import CONFIG_NAME, KBLaMModel
    from kblam_integrations.training.trainer import TrainConfig, TrainingData, fit_pool_refusal_classifier

    cfg = TrainConfig.load(config_path)
    model = KBLaMModel.from_pretrained(checkpoint)
    out = Path(cfg.output_dir)
    data = TrainingData(cfg, model, out / "cache")
    phase = next(p for p in cfg.phases if p.cached)
    clf = fit_pool_refusal_classifier(cfg, phase, model, data, out)
    model.config.save(Path(checkpoint) / CONFIG_NAME)
    print("refusal classifier:", clf.to_dict())


if __name__ == "__main__":
    main(*sys.argv[1:3])
