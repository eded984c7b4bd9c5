"""Copy a trained checkpoint into the package as the shipped default weights (fp16 safetensors).

    .venv/bin/python scripts/ship_weights.py runs/default/final

Writes kblam_integrations/weights/smollm2-135m-minilm/{kblam_config.json,
kblam_adapters.safetensors} and calibrates grounded mode's refusal threshold on a validation-split dev set
(the refusal classifier's probability threshold, or ``refusal_ratio``); the card (README.md beside them) is written by hand from
the training log and docs/benchmarks/eval.md.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "kblam_integrations" / "weights" / "smollm2-135m-minilm"
# A dev set: validation-split vocabulary (names and values never trained on), its own seed (11),
# no name shared with tests/data/synthetic_validation.json. Train-split calibration
# (synthetic_train_calibration.json) over-refuses on unseen vocabulary: attention on a
# correctly retrieved but unfamiliar name is less peaked.
CALIBRATION_FILE = "synthetic_dev_calibration.json"


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
    # Calibrate grounded mode's refusal threshold on the dev set (never the evaluation files).
    from kblam_integrations.model.config import KBLaMConfig
    from kblam_integrations.model.kblam_model import CONFIG_NAME, KBLaMModel
    from kblam_integrations.training.evaluate import calibrate_refusal_ratio

    model = KBLaMModel.from_pretrained(TARGET)
    ratio, metrics = calibrate_refusal_ratio(model, ROOT / "tests" / "data" / CALIBRATION_FILE,
                                             kb_size=100)
    config = KBLaMConfig.load(TARGET / CONFIG_NAME)
    config.refusal_ratio = model.config.refusal_ratio
    config.refusal_classifier = model.config.refusal_classifier
    config.save(TARGET / CONFIG_NAME)
    print(f"refusal threshold = {ratio} (dev-set calibration: {metrics})")


if __name__ == "__main__":
    main(sys.argv[1])
