"""The benchmarks' own logic on a tiny source: time_to_accuracy's side-by-side comparison of two recipes."""
import json
import subprocess
import sys

from tests.conftest import ROOT, synthetic_faces, write_npz


def test_time_to_accuracy_compares_two_recipes_per_seed(tmp_path):
    data = write_npz(tmp_path / "s.npz", {"train": synthetic_faces(200, 0), "test": synthetic_faces(70, 1)})
    cmd = [sys.executable, str(ROOT / "benchmarks" / "time_to_accuracy.py"), "--data", str(data), "--recipe", "quick",
           "--compare", "quick", "--epochs", "1", "--target", "0.0", "--seeds", "0", "1", "--device", "cpu",
           "--out", str(tmp_path / "runs")]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    table = out.stdout.strip().splitlines()[-3:]
    assert table[0].split()[0] == "seed" and "speed-up" in table[0]
    assert [row.split()[0] for row in table[1:]] == ["0", "1"]
    # four runs, each in its own folder (the same recipe twice: one as the recipe, one as the baseline)
    assert len(list((tmp_path / "runs").iterdir())) == 4
    js = subprocess.run(cmd[:-2] + ["--json", "--seeds", "3"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    rows = [json.loads(l) for l in js.stdout.splitlines() if l.startswith("{")]
    assert [(r["role"], r["seed"], r["reached"]) for r in rows] == [("recipe", 3, True), ("compare", 3, True)]
