"""fer_core.audit: planted copies (exact, JPEG quality 60, brightened) of test faces inside train are found and
nothing else is; the exact pair search against brute force; flat faces; dedup_mask; confident-learning suspects;
the CLI on the bundled sample."""
from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from fer_core import audit
from fer_core.data import load_split
from fer_core.sources import CLASSES
from tests.conftest import ROOT

SAMPLE = ROOT / "samples" / "fer2013_sample.npz"


def jpeg(face, quality=60) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(face).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def png(face) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(face).save(buf, "PNG")
    return buf.getvalue()


def write_folder(root, split, faces, labels, names, encode=png):
    for f, k, n in zip(faces, labels, names):
        d = root / split / CLASSES[k]
        d.mkdir(parents=True, exist_ok=True)
        (d / n).write_bytes(encode(f))


def pair_key(p) -> tuple:
    return (p["split_a"], p["id_a"], p["split_b"], p["id_b"])


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """An image-folder source from the bundled sample's real faces: test/ = its 656 test faces (PNG, lossless);
    train/ = 400 of its train faces plus 30 planted copies of test faces: 10 exact (PNG), 10 re-encoded as JPEG
    quality 60 files, 10 brightened by 3 to 6 grey levels. The planted faces are picked among test faces in no
    pair of the sample itself even at twice the threshold, so each planted copy can make one pair only."""
    root = tmp_path_factory.mktemp("planted") / "fer"
    te, tr = load_split(SAMPLE, "test"), load_split(SAMPLE, "train")
    base = audit.match(np.concatenate([tr.x[:400], te.x]), threshold=2 * audit.THRESHOLD)
    busy = {k - 400 for k in np.concatenate(base[:2]) if k >= 400}
    rng = np.random.default_rng(0)
    chosen = rng.choice([k for k in range(len(te)) if k not in busy], 30, replace=False)
    write_folder(root, "test", te.x, te.y, [f"t{k:04d}.png" for k in range(len(te))])
    write_folder(root, "train", tr.x[:400], tr.y[:400], [f"r{k:04d}.png" for k in range(400)])
    exact, q60, bright = chosen[:10], chosen[10:20], chosen[20:]
    write_folder(root, "train", te.x[exact], te.y[exact], [f"copy_exact_{k:04d}.png" for k in exact])
    write_folder(root, "train", te.x[q60], te.y[q60], [f"copy_q60_{k:04d}.jpg" for k in q60], jpeg)
    shift = rng.integers(3, 7, size=10)
    brighter = np.clip(te.x[bright].astype(int) + shift[:, None, None], 0, 255).astype(np.uint8)
    write_folder(root, "train", brighter, te.y[bright], [f"copy_bright_{k:04d}.png" for k in bright])
    return root, chosen, te


def test_planted_copies_are_found_and_nothing_else(planted, tmp_path, monkeypatch):
    root, chosen, te = planted
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    sets = audit.load_sets(root)
    assert list(sets) == ["train", "test"] and len(sets["train"]) == 430
    pairs = audit.find_duplicates(sets)
    # what the sample holds of its own (its real near duplicates among these faces) ...
    not_copy = np.array(["copy_" not in i for i in sets["train"].ids])
    own = audit.find_duplicates({"train": sets["train"].subset(not_copy), "test": sets["test"]})
    assert {pair_key(p) for p in pairs if "copy_" not in p["id_a"]} == {pair_key(p) for p in own}
    # ... and exactly one pair per planted copy: the copy with the test face it was made from, labels agreeing
    planted_pairs = [p for p in pairs if "copy_" in p["id_a"]]
    found = {(p["id_a"].rsplit("/", 1)[-1].split(".")[0], p["id_b"]) for p in planted_pairs}
    want = set()
    for kind, ks in (("exact", chosen[:10]), ("q60", chosen[10:20]), ("bright", chosen[20:])):
        want |= {(f"copy_{kind}_{k:04d}", f"test/{CLASSES[te.y[k]]}/t{k:04d}.png") for k in ks}
    assert found == want and len(planted_pairs) == 30
    assert all(p["split_a"] == "train" and p["split_b"] == "test" and p["same_label"] for p in planted_pairs)
    exact = [p["distance"] for p in planted_pairs if "copy_exact" in p["id_a"]]
    assert exact == [0] * 10
    # dedup_mask drops exactly the test faces with a copy in train (the planted ones and the sample's own)
    keep = audit.dedup_mask(root, "test", "train")
    copied = {p["index_b"] for p in pairs if (p["split_a"], p["split_b"]) == ("train", "test")}
    assert set(np.flatnonzero(~keep)) == copied and set(chosen) <= copied


def test_csv_pairs_are_named_by_line(tmp_path, monkeypatch):
    """In a CSV source a face is its line: a PublicTest row copying a Training row, with another label."""
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    x = load_split(SAMPLE, "test").x[:4]
    rows = [(3, x[0], "Training"), (0, x[1], "Training"), (4, x[0], "PublicTest"), (6, x[2], "PrivateTest"),
            (6, x[3], "PublicTest")]
    lines = ["emotion,pixels,Usage"] + [f"{k},{' '.join(map(str, f.ravel()))},{u}" for k, f, u in rows]
    (tmp_path / "fer2013.csv").write_text("\n".join(lines) + "\n")
    r = audit.audit(tmp_path / "fer2013.csv")
    assert list(r["splits"]) == ["train", "val", "test"] and r["splits"]["val"]["usage"] == "PublicTest"
    assert [(p["split_a"], p["id_a"], p["label_a"], p["split_b"], p["id_b"], p["label_b"], p["same_label"])
            for p in r["duplicates"]] == [("train", "line 2", "happy", "val", "line 4", "sad", False)]
    with pytest.raises(audit.DataError, match="holdout is a slice of train"):
        audit.load_sets(tmp_path / "fer2013.csv", ["train", "holdout"])


def test_pair_search_is_exact_against_brute_force():
    rng = np.random.default_rng(1)
    h = rng.integers(0, 2**63, size=(600, 4), dtype=np.uint64)
    h[:, 3] &= np.uint64(2**63 - 1)  # the hash's 256th bit is always 0
    for src, dst, flips in ((0, 1, 0), (2, 3, 5), (4, 5, 24), (6, 7, 25), (8, 9, 40)):  # plant close pairs
        h[dst] = h[src]
        for b in rng.choice(255, flips, replace=False):
            h[dst, b // 64] ^= np.uint64(1) << np.uint64(b % 64)
    full = audit.hamming(h[:, None], h[None])  # (600, 600) every pair, the plain way
    for t in (0, 24, 40):
        i, j, d = audit.near_pairs(h, t, block=64)
        ii, jj = np.nonzero(np.triu(full <= t, 1))
        assert set(zip(i, j)) == set(zip(ii, jj)) and np.array_equal(d, full[i, j])
        assert list(d) == sorted(d)
        i, j, d = audit.near_pairs(h[:300], t, other=h[300:])  # across two sets
        ii, jj = np.nonzero(full[:300, 300:] <= t)
        assert set(zip(i, j)) == set(zip(ii, jj))


def test_brightness_contrast_and_flat_faces():
    te = load_split(SAMPLE, "test")
    x = te.x[:50]
    h = audit.phash(x)
    stretched = np.clip((x.astype(float) - 128) * 0.8 + 128, 0, 255).round().astype(np.uint8)  # less contrast
    assert audit.hamming(h, audit.phash(stretched)).max() <= audit.THRESHOLD
    flat = np.stack([np.full((48, 48), v, np.uint8) for v in (0, 0, 5, 200)])
    i, j, d, is_flat = audit.match(np.concatenate([flat, x]))
    flat_pairs = {(a, b) for a, b, f in zip(i, j, is_flat) if f}
    assert flat_pairs == {(0, 1), (0, 2), (1, 2)}  # grey levels 0, 0, 5 pair; 200 pairs with none
    assert not any(a < 4 or b < 4 for a, b, f in zip(i, j, is_flat) if not f)  # a flat face has no hash


def test_suspects_known_answer():
    labels = np.array([0, 0, 1, 1, 2, 2, 2])
    probs = np.array([[0.8, 0.1, 0.1],  # class 0's threshold: mean(0.8, 0.6) = 0.7; confident and right
                      [0.6, 0.3, 0.1],  # no class reaches its threshold: not counted
                      [0.15, 0.75, 0.1],  # class 1's threshold: mean(0.75, 0.9) = 0.825; unsure, no rival
                      [0.05, 0.9, 0.05],
                      [0.75, 0.05, 0.2],  # labelled 2 (threshold mean(0.2, 0.8, 0.2) = 0.4): class 0 passes 0.7
                      [0.1, 0.1, 0.8],
                      [0.71, 0.09, 0.2]])  # the same, by a smaller margin
    np.testing.assert_allclose(audit.class_thresholds(probs, labels, 3), [0.7, 0.825, 0.4])
    s = audit.suspects(probs, labels, ids=np.array(list("abcdefg")), split="test", classes=("x", "y", "z"))
    assert [(r["rank"], r["index"], r["id"], r["label"], r["suggested"]) for r in s] == [
        (1, 4, "e", "z", "x"), (2, 6, "g", "z", "x")]
    assert [r["margin"] for r in s] == pytest.approx([0.55, 0.51])
    assert s[0]["p_label"] == pytest.approx(0.2) and s[0]["p_suggested"] == pytest.approx(0.75)


def test_cli_on_the_sample_json_and_text(tmp_path, monkeypatch, capsys):
    env = {"FER_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-m", "fer_core.audit", "--data", str(SAMPLE), "--json"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out) >= {"duplicates", "suspects", "summary", "threshold"} and out["suspects"] == []
    assert out["splits"] == {"train": {"faces": 1201, "usage": "Training"},
                             "test": {"faces": 656, "usage": "PublicTest"}}
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    sets = {s: load_split(SAMPLE, s) for s in ("train", "test")}
    assert out["duplicates"] == audit.find_duplicates(sets)  # the CLI prints what the library finds
    for p in out["duplicates"]:
        assert set(p) == set(audit.PAIR_FIELDS)
        assert str(sets[p["split_a"]].ids[p["index_a"]]) == p["id_a"] and p["id_a"].endswith(".jpg")
        assert p["same_label"] == (p["label_a"] == p["label_b"])
    # the text report and a bad path, in process (the same main())
    assert audit.main(["--data", str(SAMPLE), "--top", "3"]) == 0
    text = capsys.readouterr().out
    assert "train/test" in text and out["duplicates"][0]["id_a"] in text
    assert audit.main(["--data", str(tmp_path / "none.zip")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such file" in err


def test_suspects_of_a_checkpoint_and_their_csv(tiny_checkpoint, synth_npz, tmp_path, monkeypatch):
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    r = audit.audit(synth_npz, checkpoint=tiny_checkpoint, split="test")
    from fer_core import interpret, load_model

    model, prep = load_model(tiny_checkpoint)
    faces = load_split(synth_npz, "test")
    preds = interpret.predictions(model, prep, faces, cache=False)
    assert r["suspects"] == audit.suspects(preds.probs, faces.y, faces.ids, "test")
    # the face the model is surest of, relabelled, is the first suspect (its probability of its true class is
    # above that class's mean, the threshold)
    k = int(np.argmax(preds.probs[np.arange(len(faces)), faces.y]))
    y = faces.y.copy()
    y[k] = (y[k] + 1) % 7
    s = audit.suspects(preds.probs, y, faces.ids, "test")
    assert s and s[0]["index"] == k and s[0]["suggested"] == CLASSES[faces.y[k]] and s[0]["label"] == CLASSES[y[k]]
    hostile = [dict(s[0], id="=HYPERLINK(\"http://x\")")]
    text = audit.to_csv(hostile, audit.SUSPECT_FIELDS)
    assert text.splitlines()[0] == ",".join(audit.SUSPECT_FIELDS) and "'=HYPERLINK" in text
