"""Copy a trained checkpoint into the package as the shipped default weights (fp16 safetensors).

    .venv/bin/python scripts/ship_weights.py runs/default/final

Writes kblam_integrations/weights/smollm2-135m-minilm/{kblam_config.json,
kblam_adapters.safetensors} and calibrates grounded mode's refusal threshold
(``refusal_ratio``) on train-split questions; the card (README.md beside them) is written by hand from
the training log and docs/benchmarks/eval.md.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "kblam_integrations" / "weights" / "smollm2-135m-minilm"


def main(src: str) -> None:
    src_dir = Path(src)
    tensors = load_file(str(src_dir / "kblam_adapters.safetensors"))
    TARGET.mkdir(parents=True, exist_ok=True)
    tmp = TARGET / ".kblam_adapters.safetensors.tmp"
    save_file({k: v.half().contiguous() for k, v in tensors.items()}, str(tmp),
              metadata={"format": "kblam-adapters/1", "backbone": "smollm2", "encoder": "all-MiniLM-L6-v2"})
    tmp.replace(TARGET / "kblam_adapters.safetensors")
    shutil.copyfile(src_dir / "kblam_config.json", TARGET / "kblam_config.json")
    print(f"shipped {src_dir} -> {TARGET}")
    # Calibrate grounded mode's refusal threshold on TRAIN-split entities (never the validation set).
    from kblam_integrations.model.config import KBLaMConfig
    from kblam_integrations.model.kblam_model import CONFIG_NAME, KBLaMModel
    from kblam_integrations.training.evaluate import calibrate_refusal_ratio

    model = KBLaMModel.from_pretrained(TARGET)
    ratio, metrics = calibrate_refusal_ratio(model, ROOT / "tests" / "data" / "synthetic_train_calibration.json",
                                             kb_size=100)
    config = KBLaMConfig.load(TARGET / CONFIG_NAME)
    config.refusal_ratio = ratio
    config.save(TARGET / CONFIG_NAME)
    print(f"refusal_ratio = {ratio} (train-split calibration: {metrics})")


if __name__ == "__main__":
    main(sys.argv[1])
