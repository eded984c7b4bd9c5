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
    from kblam_integrations.training.retrieval_phase import RetrievalSampler, fit_refusal_classifier
    from kblam_integrations.training.trainer import TrainConfig, TrainingData, pool_query_features

    cfg = TrainConfig.load(config_path)
    model = KBLaMModel.from_pretrained(checkpoint)
    out = Path(cfg.output_dir)
    data = TrainingData(cfg, model, out / "cache")
    feats = pool_query_features(cfg, model, data, out)
    phase = next(p for p in cfg.phases if p.cached)
    clf = fit_refusal_classifier(model, RetrievalSampler(data.triples, data.questions, feats), data.key_emb,
                                 kb_sizes=phase.kb_sizes, refusal_fraction=cfg.refusal_fraction, seed=cfg.seed + 1)
    model.config.save(Path(checkpoint) / CONFIG_NAME)
    print("refusal classifier:", clf.to_dict())


if __name__ == "__main__":
    main(*sys.argv[1:3])
