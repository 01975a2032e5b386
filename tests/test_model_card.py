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
@pytest.mark.parametrize("row,flag", [("single pass", None), ("flip TTA (`--tta`)", "--tta")])
def test_card_numbers_reproduce(row, flag):
    card = (ROOT / "checkpoints" / "README.md").read_text()
    m = re.search(re.escape(f"| {row} | **") + r"([0-9.]+)\*\* \| ([0-9.]+) \|", card)
    assert m, f"row '{row}' not found in the model card"
    acc, f1 = float(m.group(1)), float(m.group(2))
    args = [sys.executable, "-m", "fer_core.evaluate", "--checkpoint", str(ROOT / "checkpoints" / "fer_best.pt"),
            "--data", str(DATA), "--split", "test", "--json"] + ([flag] if flag else [])
    r = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["n"] == 3589
    assert round(out["accuracy"], 4) == acc and round(out["macro_f1"], 4) == f1
