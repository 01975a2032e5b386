"""The model card's PublicTest numbers are what `python -m fer_core.evaluate` prints for the shipped model.

Needs the full data (../shared/data/fer2013.zip, or $FER2013_ZIP) and a few minutes of CPU: marked slow.
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

DATA = Path(os.environ.get("FER2013_ZIP", ROOT.parent / "shared" / "data" / "fer2013.zip"))


@pytest.mark.slow
@pytest.mark.skipif(not DATA.exists(), reason=f"full FER2013 data not at {DATA}")
@pytest.mark.parametrize("row,flag,precision", [("single pass", None, "fp32"), ("flip TTA (`--tta`)", "--tta", "fp32"),
                                                ("single pass, bf16 inference", None, "bf16"),
                                                ("flip TTA, bf16 inference", "--tta", "bf16")])
def test_card_numbers_reproduce(row, flag, precision):
    from fer_core.inference import cpu_native_bf16

    if precision == "bf16" and not cpu_native_bf16():
        pytest.skip("bf16 rows are measured with native bf16 (emulated bf16 rounds differently and is slow)")
    card = (ROOT / "checkpoints" / "README.md").read_text()
    m = re.search(re.escape(f"| {row} | **") + r"([0-9.]+)\*\* \| ([0-9.]+) \|", card)
    assert m, f"row '{row}' not found in the model card"
    acc, f1 = float(m.group(1)), float(m.group(2))
    args = [sys.executable, "-m", "fer_core.evaluate", "--checkpoint", str(ROOT / "checkpoints" / "fer_best.pt"),
            "--data", str(DATA), "--split", "test", "--json", "--precision", precision] + ([flag] if flag else [])
    r = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["n"] == 3589
    assert round(out["accuracy"], 4) == acc and round(out["macro_f1"], 4) == f1


SHIPPED = ["fer_best.pt", "seed_vgg.pt", "fer_cpu.pt", "fer_cpu_v1.pt"]
PHOTOS = Path(os.environ.get("FER_REAL_PHOTOS", ROOT.parent / "shared" / "data" / "real_photos_dev"))


@pytest.mark.slow
@pytest.mark.skipif(not (PHOTOS / "labels.csv").exists(), reason=f"labelled real photos not at {PHOTOS}")
@pytest.mark.parametrize("ckpt", SHIPPED)
def test_card_real_photo_numbers_reproduce(ckpt):
    """The "Real photos" table's YuNet rows: faces detected, accuracy on them and over all photos, in fp32."""
    from fer_core.evaluate import evaluate_photos

    card = (ROOT / "checkpoints" / "README.md").read_text()
    m = re.search(re.escape(f"| {ckpt} | ") + r"(?:\*\*)?YuNet \(default\)(?:\*\*)? \| (?:\*\*)?(\d+) / (\d+)(?:\*\*)? \| "
                  r"([0-9.]+) \((\d+) faces\) \| (?:\*\*)?([0-9.]+)(?:\*\*)? \|", card)
    assert m, f"no YuNet row for {ckpt} in the model card's Real photos table"
    found, photos, acc_found, n_found, acc_all = (int(m[1]), int(m[2]), float(m[3]), int(m[4]), float(m[5]))
    out = evaluate_photos(ROOT / "checkpoints" / ckpt, PHOTOS, precision="fp32")
    assert (out["detected"], out["photos"]) == (found, photos) and n_found == found
    assert round(out["accuracy_found"], 3) == acc_found and round(out["accuracy_all"], 3) == acc_all


AGREED = Path(os.environ.get("FER_REAL_PHOTOS_AGREED", ROOT.parent / "shared" / "data" / "real_photos_dev_agreed"))


@pytest.mark.slow
@pytest.mark.skipif(not (AGREED / "labels.csv").exists(), reason=f"agreed real photos not at {AGREED}")
@pytest.mark.parametrize("ckpt", SHIPPED)
def test_card_agreed_photo_numbers_reproduce(ckpt):
    """The table of the 108 agreed real photos: accuracy and macro F1, fp32, single pass; and the same numbers as
    stamped in the file (scripts/stamp_evaluation.py --photos), which Home, Classify and Video show."""
    from fer_core.checkpoint import read_checkpoint
    from fer_core.evaluate import evaluate_photos

    card = (ROOT / "checkpoints" / "README.md").read_text()
    section = card.split("On the 108 photos of `real_photos_dev_agreed`", 1)[1].split("\n\n", 2)[1]
    m = re.search(re.escape(f"| {ckpt} | ") + r"(?:\*\*)?([0-9.]+)(?:\*\*)? \| ([0-9.]+) \|", section)
    assert m, f"no row for {ckpt} in the model card's agreed-photos table"
    out = evaluate_photos(ROOT / "checkpoints" / ckpt, AGREED, precision="fp32")
    assert out["photos"] == 108 and round(out["accuracy_all"], 3) == float(m[1])
    assert round(out["macro_f1"], 3) == float(m[2])
    stamp = read_checkpoint(ROOT / "checkpoints" / ckpt)["photo_evaluation"]
    assert (stamp["photos"], stamp["detected"], stamp["precision"]) == (108, out["detected"], "fp32")
    assert (stamp["accuracy"], stamp["macro_f1"]) == (round(out["accuracy_all"], 4), round(out["macro_f1"], 4))
