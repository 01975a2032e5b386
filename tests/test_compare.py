"""fer_core.compare: McNemar's test on known answers, the comparison's parts on a hand-made case, and
`python -m fer_core.evaluate --compare` on two real checkpoints."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy import stats

from fer_core import compare
from fer_core.checkpoint import read_checkpoint, save_checkpoint
from fer_core.data import load_split
from fer_core.sources import CLASSES
from tests.conftest import ROOT


def outcomes(b: int, c: int, both: int = 3, neither: int = 2):
    """Correctness arrays with b faces only A gets right, c only B, and some both / neither get right."""
    a = [True] * b + [False] * c + [True] * both + [False] * neither
    bb = [False] * b + [True] * c + [True] * both + [False] * neither
    return np.array(a), np.array(bb)


@pytest.mark.parametrize("b,c,p_exact,p_mid,p_chi2", [
    (0, 5, 2 / 32, 1 / 32, math.erfc(math.sqrt(5 / 2))),  # by hand: 2 P(X = 0), less P(X = 0); chi2 = 25 / 5
    # b + c = 22, k = 6: sum_{i<=6} C(22, i) = 110,056, C(22, 6) = 74,613, 2^22 = 4,194,304; chi2 = 100 / 22
    (6, 16, 2 * 110056 / 4194304, (2 * 110056 - 74613) / 4194304, 0.03300),
    (16, 6, 2 * 110056 / 4194304, (2 * 110056 - 74613) / 4194304, 0.03300),  # symmetric in A and B
    (7, 7, 1.0, 1.0, 1.0),  # a tie: 2 P(X <= 7) = 1 + P(X = 7) caps at 1; less P(X = 7) it is 1 exactly
])
def test_mcnemar_known_answers(b, c, p_exact, p_mid, p_chi2):
    m = compare.mcnemar(*outcomes(b, c))
    assert (m["b"], m["c"], m["n"]) == (b, c, b + c)
    assert m["p_exact"] == pytest.approx(p_exact, rel=1e-12)
    assert m["p_mid"] == pytest.approx(p_mid, rel=1e-12)
    assert m["p_chi2"] == pytest.approx(p_chi2, abs=5e-5)
    assert m["chi2"] == pytest.approx((b - c) ** 2 / (b + c))


def test_mcnemar_agrees_with_scipy_and_survives_large_counts():
    for b, c in ((3, 11), (40, 61), (1000, 1100)):
        m = compare.mcnemar(*outcomes(b, c))
        assert m["p_exact"] == pytest.approx(stats.binomtest(b, b + c, 0.5).pvalue, rel=1e-9)
        assert m["p_chi2"] == pytest.approx(stats.chi2.sf((b - c) ** 2 / (b + c), 1), rel=1e-9)
        assert 0 < m["p_mid"] < m["p_exact"]
    m = compare.mcnemar(*outcomes(0, 0))
    assert m["n"] == 0 and m["p_exact"] == m["p_mid"] == 1.0


def test_compare_parts_on_a_hand_made_case():
    y = np.array([0, 1, 2, 3, 3])
    eye = np.eye(7)
    pa = np.stack([eye[0], eye[1], eye[2], eye[3], eye[3]]) * 0.9 + 0.1 / 7  # A: all right
    pb = pa.copy()
    pb[1] = eye[4] * 0.6 + 0.4 / 7  # B: face 1 wrong, not sure
    pb[3] = eye[5] * 0.95 + 0.05 / 7  # face 3 wrong, sure
    r = compare.compare(y, pa, pb, ids=np.array(list("vwxyz")))
    assert r["a"]["accuracy"] == 1.0 and r["b"]["accuracy"] == pytest.approx(0.6)
    assert (r["mcnemar"]["b"], r["mcnemar"]["c"]) == (2, 0)
    diff = np.array(r["confusion_difference"])
    assert diff[1, 1] == -1 and diff[1, 4] == 1 and diff[3, 3] == -1 and diff[3, 5] == 1 and np.abs(diff).sum() == 4
    assert r["recall"]["happy"] == {"a": 1.0, "b": 0.5} and r["recall"]["disgust"] == {"a": 1.0, "b": 0.0}
    # both confident first: face 3 (min(0.91, 0.96)) before face 1 (min(0.91, 0.66))
    assert [d["index"] for d in r["disagreements"]] == [3, 1] and r["n_disagree"] == 2
    d = r["disagreements"][0]
    assert (d["id"], d["true"], d["pred_a"], d["pred_b"], d["right"]) == ("y", "happy", "happy", "surprise", "a")
    assert list(compare.disagreements(pa, pb, "a")) == [1, 3]  # A equally sure of both: split order (stable)
    assert list(compare.disagreements(pa, pb, "b")) == [3, 1]


@pytest.fixture(scope="module")
def biased_checkpoint(tiny_checkpoint, tmp_path_factory):
    """The tiny model with its class-0 logit raised: a second real checkpoint that disagrees on some faces."""
    ckpt = read_checkpoint(tiny_checkpoint)
    last = [k for k in ckpt["state_dict"] if k.startswith("head.") and k.endswith(".bias")][-1]
    ckpt["state_dict"][last] = ckpt["state_dict"][last] + torch.tensor([4.0] + [0.0] * 6)
    path = tmp_path_factory.mktemp("biased") / "biased.pt"
    save_checkpoint(ckpt, path)
    return path


def test_evaluate_compare_cli(tiny_checkpoint, biased_checkpoint, synth_npz, capsys):
    from fer_core import load_model
    from fer_core.inference import predict_proba

    args = [sys.executable, "-m", "fer_core.evaluate", "--checkpoint", str(tiny_checkpoint), "--compare",
            str(biased_checkpoint), "--data", str(synth_npz), "--split", "test", "--precision", "fp32"]
    r = subprocess.run(args + ["--json"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    faces = load_split(synth_npz, "test")
    probs = [predict_proba(*load_model(c), faces.x, precision="fp32") for c in (tiny_checkpoint, biased_checkpoint)]
    want = compare.compare(faces.y, *probs, ids=faces.ids)
    assert out["mcnemar"] == want["mcnemar"] and out["confusion_difference"] == want["confusion_difference"]
    assert [d["index"] for d in out["disagreements"]] == [d["index"] for d in want["disagreements"]]
    assert out["a"]["accuracy"] == want["a"]["accuracy"] and out["n"] == len(faces) == 210
    assert 0 < out["n_disagree"] and all(d["pred_b"] == CLASSES[0] for d in out["disagreements"])
    assert out["mcnemar"]["b"] >= 1  # the biased model loses faces the tiny one gets right
    # the text report and a missing checkpoint, in process (the same main())
    from fer_core import evaluate

    assert evaluate.main(args[3:]) == 0
    text = capsys.readouterr().out
    assert "McNemar" in text and f"{out['n_disagree']} faces predicted differently" in text
    assert evaluate.main(["--checkpoint", str(tiny_checkpoint), "--compare", str(tiny_checkpoint) + ".missing",
                          "--data", str(synth_npz)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "checkpoint not found" in err
    assert evaluate.main(["--checkpoint", str(tiny_checkpoint), "--compare", str(tiny_checkpoint),
                          "--photos", str(ROOT)]) == 2
    assert "--compare works on --data" in capsys.readouterr().err
