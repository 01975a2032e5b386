"""The model card's "Data audit" section is what scripts/audit_card.py computes on the full FER2013 zip, and
checkpoints/publictest_near_copies.txt lists the PublicTest faces it finds with a near copy in Training.

Needs ../shared/data/fer2013.zip (or $FER2013_ZIP) and a few minutes of CPU: marked slow.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

DATA = Path(os.environ.get("FER2013_ZIP", ROOT.parent / "shared" / "data" / "fer2013.zip"))


@pytest.mark.slow
@pytest.mark.skipif(not DATA.exists(), reason=f"full FER2013 data not at {DATA}")
def test_card_audit_section_reproduces(tmp_path):
    copies = tmp_path / "copies.txt"
    r = subprocess.run([sys.executable, "scripts/audit_card.py", "--data", str(DATA), "--json", "--copies", str(copies)],
                       cwd=ROOT, capture_output=True, text=True, timeout=3600)
    assert r.returncode == 0, r.stderr
    f = json.loads(r.stdout)
    card = (ROOT / "checkpoints" / "README.md").read_text()
    section = card.split("## Data audit", 1)[1].split("\n## ", 1)[0]
    for table in f["card"].split("\n\n"):  # the duplicates table and the accuracy table, cell for cell
        assert table in section
    n, total = len(f["test_copies"]), f["faces"]["test"]
    assert f"{n} of the {total:,} PublicTest faces ({n / total:.1%})" in section
    assert f"{f['train_test']['conflicting']} of those pairs carry different labels" in section
    tt, tp = f["train_train"], f["train_test"]
    assert f"their {tt['flat']} pairs within Training and {tp['flat']} across" in section
    assert f["flat_faces"] == {"train": 12, "test": 1}  # "11 black and 1 grey face in Training, 1 black one"
    assert f["accuracy"]["fer_best.pt"]["all"] == pytest.approx(0.7052, abs=5e-5)  # the card's fp32 single pass
    assert copies.read_text() == (ROOT / "checkpoints" / "publictest_near_copies.txt").read_text()
    assert n == total - f["test_kept"]
