"""Two models on the same faces: accuracy and macro F1 with a paired significance test (McNemar's), both
confusion matrices and their difference, per-class recall side by side, and the faces where they disagree.

    python -m fer_core.evaluate --checkpoint A --compare B --data D --split S [--tta] [--json]

McNemar's test looks only at the faces where exactly one model is right: b (A right, B wrong) and c (A wrong,
B right). Under "the models are equally accurate" b is Binomial(b + c, 1/2). The exact two-sided p-value is
2 P(X <= min(b, c)), capped at 1; the mid-p value subtracts the point probability P(X = min(b, c)), which keeps
the exact test's validity in practice without its conservatism (Fagerland, Lydersen & Laake, BMC Medical Research
Methodology 13:91, 2013, recommend it); the chi-square statistic (b - c)^2 / (b + c) is given too."""
from __future__ import annotations

import math

import numpy as np

from .sources import CLASSES
from .metrics import metrics
from .interpret import confusion

ORDERS = {"both": "both confident", "a": "A most confident", "b": "B most confident"}


def mcnemar(correct_a, correct_b) -> dict:
    """Paired test of two models' accuracy on the same faces (bool arrays: each model right or not per face):
    b, c, n = b + c, p_exact, p_mid, chi2 (without continuity correction) and its p-value p_chi2."""
    a, b_ = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    b, c = int((a & ~b_).sum()), int((~a & b_).sum())
    n, k = b + c, min(b, c)
    if n == 0:
        return dict(b=0, c=0, n=0, p_exact=1.0, p_mid=1.0, chi2=0.0, p_chi2=1.0)
    tail = sum(math.comb(n, i) for i in range(k + 1))  # exact integers: no underflow before the division
    p_exact = min(1.0, 2 * tail / 2**n)
    p_mid = min(1.0, (2 * tail - math.comb(n, k)) / 2**n)
    chi2 = (b - c) ** 2 / n
    return dict(b=b, c=c, n=n, p_exact=p_exact, p_mid=p_mid, chi2=chi2, p_chi2=math.erfc(math.sqrt(chi2 / 2)))


def disagreements(probs_a, probs_b, order: str = "both") -> np.ndarray:
    """Indices of the faces the two models predict differently, most confident first: by the lower of the two
    confidences ("both": faces both are sure of), or by A's or B's confidence alone."""
    pa, pb = np.asarray(probs_a), np.asarray(probs_b)
    idx = np.flatnonzero(pa.argmax(1) != pb.argmax(1))
    ca, cb = pa[idx].max(1), pb[idx].max(1)
    key = {"both": np.minimum(ca, cb), "a": ca, "b": cb}[order]
    return idx[np.argsort(-key, kind="stable")]


def compare(y, probs_a, probs_b, classes=CLASSES, ids=None) -> dict:
    """Everything the Compare page and `evaluate --compare` report, for labels y (N,) and the two models'
    probabilities (N, C): "a" and "b" (fer_core.metrics.metrics of each), "mcnemar", "confusion_difference"
    (B's counts minus A's), "recall" per class of each, and "disagreements" (one dict per face, "both" order)."""
    y = np.asarray(y)
    pa, pb = np.asarray(probs_a), np.asarray(probs_b)
    ya, yb = pa.argmax(1), pb.argmax(1)
    ma, mb = metrics(y, ya, classes), metrics(y, yb, classes)
    ca, cb = confusion(y, ya, len(classes))[0], confusion(y, yb, len(classes))[0]
    rows = []
    for k in disagreements(pa, pb):
        right = "a" if ya[k] == y[k] else "b" if yb[k] == y[k] else "neither"
        rows.append(dict(index=int(k), id=str(ids[k]) if ids is not None else str(k), true=classes[y[k]],
                         pred_a=classes[ya[k]], conf_a=float(pa[k, ya[k]]), pred_b=classes[yb[k]],
                         conf_b=float(pb[k, yb[k]]), right=right))
    return {"n": int(len(y)), "a": ma, "b": mb, "mcnemar": mcnemar(ya == y, yb == y),
            "confusion_difference": (cb - ca).tolist(),
            "recall": {c: {"a": ma["per_class"][c]["recall"], "b": mb["per_class"][c]["recall"]} for c in classes},
            "n_disagree": len(rows), "disagreements": rows}


def compare_checkpoints(checkpoint_a, checkpoint_b, data, split: str = "test", tta: bool = False,
                        device: str = "cpu", precision: str | None = None) -> dict:
    """compare() of two checkpoints' predictions over one split (the CLI's path; the page reads the cached
    predictions instead)."""
    import torch

    from .checkpoint import load_model
    from .data import load_split
    from .inference import inference_precision, predict_logits

    faces = load_split(data, split)
    probs, classes = [], None
    for ckpt in (checkpoint_a, checkpoint_b):
        model, prep = load_model(ckpt, device=device)
        if classes is not None and tuple(model.classes) != classes:
            raise ValueError(f"{ckpt}: its classes {list(model.classes)} differ from {list(classes)}")
        classes = tuple(model.classes)
        logits = predict_logits(model, prep, faces.x, tta=tta, precision=precision)
        probs.append(torch.softmax(torch.from_numpy(logits), 1).numpy())
    out = compare(faces.y, probs[0], probs[1], classes, faces.ids)
    out.update(checkpoint_a=str(checkpoint_a), checkpoint_b=str(checkpoint_b), data=str(data), split=split, tta=tta,
               precision=inference_precision(device, precision))
    return out


def format_compare(r: dict, top: int = 10) -> str:
    m, a, b = r["mcnemar"], r["a"], r["b"]
    lines = [f"A {r['checkpoint_a']}", f"B {r['checkpoint_b']}",
             f"on {r['data']} [{r['split']}, n={r['n']}{', TTA' if r['tta'] else ''}, {r['precision']}]", "",
             f"{'':<10}{'accuracy':>10}{'macro F1':>10}",
             f"{'A':<10}{a['accuracy']:>10.4f}{a['macro_f1']:>10.4f}",
             f"{'B':<10}{b['accuracy']:>10.4f}{b['macro_f1']:>10.4f}", "",
             f"McNemar: A right & B wrong {m['b']}, A wrong & B right {m['c']}; exact p {m['p_exact']:.4g}, "
             f"mid-p {m['p_mid']:.4g}, chi2 {m['chi2']:.3f} (p {m['p_chi2']:.4g})", "",
             f"{'class':<10}{'recall A':>10}{'recall B':>10}"]
    lines += [f"{c:<10}{v['a']:>10.4f}{v['b']:>10.4f}" for c, v in r["recall"].items()]
    classes = list(r["recall"])
    lines += ["", "confusion B - A (rows true, columns predicted)", " " * 10 + "".join(f"{c[:7]:>8}" for c in classes)]
    lines += [f"{c:<10}" + "".join(f"{v:>+8d}" for v in row) for c, row in zip(classes, r["confusion_difference"])]
    lines += ["", f"{r['n_disagree']} faces predicted differently; the {min(top, r['n_disagree'])} both are surest of:"]
    lines += [f"  {d['id']}: true {d['true']}, A {d['pred_a']} {d['conf_a']:.2f}, B {d['pred_b']} {d['conf_b']:.2f}"
              for d in r["disagreements"][:top]]
    return "\n".join(lines)
