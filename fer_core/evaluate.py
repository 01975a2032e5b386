"""Evaluate a checkpoint on FER2013 faces or on labelled photos.

    python -m fer_core.evaluate --checkpoint CKPT --data PATH --split test [--tta] [--json]
    python -m fer_core.evaluate --checkpoint CKPT --photos DIR [--detector yunet|haar] [--tta] [--json]
    python -m fer_core.evaluate --checkpoint A --compare B --data PATH --split test [--tta] [--json]

DIR holds `labels.csv` (columns file,label; label a class name or index) or `<class>/` subfolders of images.
Photos mode reports the detection rate (a face found by a detector, not the whole-image fallback), accuracy
on the faces found (first face of each photo), accuracy over all photos (a photo without a face counts wrong),
per-class recall and the confusion matrix. --compare B reports two checkpoints on the same faces (fer_core.compare):
both accuracies and macro F1 with McNemar's paired test, per-class recall, the confusion difference and the faces
they disagree on."""
from __future__ import annotations

import argparse
import json
import sys

import torch

from .checkpoint import CheckpointError, load_model
from pathlib import Path

from .data import load_split
from .images import DataError
from .sources import CLASSES, IMAGE_EXTENSIONS, class_index
from .splits import SPLIT_NAMES
from .inference import PRECISIONS, inference_precision, predict_logits
from .audit import dedup_mask
from .metrics import metrics


def evaluate(checkpoint, data, split="test", tta=False, device="cpu", precision: str | None = None,
             without_near_copies: bool = False) -> dict:
    """precision: 'auto' (bf16 on a CPU with native bf16, else fp32), 'fp32' or 'bf16' (fer_core.inference).
    without_near_copies: also score the faces of `split` that have no near copy in Training (fer_core.audit's
    perceptual hash), as out["without_near_copies"]: FER2013's test splits share faces with Training, and a model
    that memorised them scores higher on those than on new faces."""
    if device == "auto":
        from .devices import resolve_device

        device = str(resolve_device(device))
    model, prep = load_model(checkpoint, device=device)
    faces = load_split(data, split)
    logits = predict_logits(model, prep, faces.x, tta=tta, precision=precision)
    out = metrics(faces.y, logits.argmax(1), model.classes)
    out.update(checkpoint=str(checkpoint), data=str(data), split=split, tta=tta,
               precision=inference_precision(device, precision))
    if faces.resolved is not None:  # what `split` read in this source, and FER2013's name for it
        out["split_resolved"] = faces.resolved.as_dict()
    if without_near_copies:
        if split == "train":
            raise ValueError("--without-near-copies scores a test split against Training, not Training itself")
        keep = dedup_mask(data, split)
        m = metrics(faces.y[keep], logits.argmax(1)[keep], model.classes)
        out["without_near_copies"] = {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "n": m["n"],
                                      "removed": int((~keep).sum())}
    return out


def photo_labels(folder) -> list[tuple[Path, int]]:
    """(image path, class index) for a labelled photo folder: labels.csv (file,label) or <class>/ subfolders."""
    import csv

    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    out = []
    if (folder / "labels.csv").is_file():
        with open(folder / "labels.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows or not {"file", "label"} <= set(rows[0]):
            raise DataError(f"{folder / 'labels.csv'}: needs a header with columns file,label")
        for n, r in enumerate(rows, 2):
            lab = r["label"].strip()
            k = int(lab) if lab.isdigit() else class_index(lab)
            if k is None or not 0 <= k < len(CLASSES):
                raise DataError(f"{folder / 'labels.csv'} line {n}: unknown label {lab!r} "
                                f"(classes: {', '.join(CLASSES)})")
            out.append((folder / r["file"].strip(), k))
    else:
        for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
            k = class_index(sub.name)
            if k is None:
                continue
            out += [(f, k) for f in sorted(sub.rglob("*")) if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS]
    if not out:
        raise DataError(f"{folder}: no labelled photos (needs labels.csv with file,label or <class>/ subfolders)")
    return out


def evaluate_photos(checkpoint, folder, tta=False, device="cpu", detector="yunet", precision: str | None = None,
                    **face_opts) -> dict:
    """Detect and classify every labelled photo; metrics over the faces found and over all photos.
    precision: as for evaluate()."""
    import numpy as np

    from .faces import NoFaceError
    from .classify import classify_image

    model, prep = load_model(checkpoint, device=device)
    items = photo_labels(folder)
    y_all, p_all, y_found, p_found, sources, errors = [], [], [], [], {}, []
    none = -1  # "no face" prediction: wrong for every class
    for path, k in items:
        err = f"{path.name}: no face found"
        try:
            res = classify_image(model, prep, str(path), name=path.name, tta=tta, precision=precision,
                                 detector=detector, **face_opts)
        except NoFaceError as e:
            res, err = [], str(e)
        except DataError as e:
            res, err = [], str(e)
        if not res:
            errors.append(err)
            y_all.append(k), p_all.append(none)
            sources["none"] = sources.get("none", 0) + 1
            continue
        r = res[0]  # the dev photos hold one face; the first in reading order is the one scored
        src = r.source if r.source != "detected" else f"detected:{getattr(r, 'detector', None) or 'detected'}"
        sources[src] = sources.get(src, 0) + 1
        pred = list(model.classes).index(r.label)
        y_all.append(k), p_all.append(pred)
        if r.source == "detected":
            y_found.append(k), p_found.append(pred)
    n = len(items)
    y_all, p_all = np.array(y_all), np.array(p_all)
    found = metrics(y_found, p_found, model.classes) if y_found else None
    out = metrics(y_all, np.where(p_all < 0, len(model.classes), p_all), model.classes)
    out["confusion_matrix"] = [row[: len(model.classes)] for row in out["confusion_matrix"]]
    out.update(checkpoint=str(checkpoint), data=str(folder), split="photos", tta=tta, detector=detector,
               precision=inference_precision(device, precision),
               photos=n, detected=len(y_found), detection_rate=len(y_found) / n, sources=sources,
               accuracy_found=found["accuracy"] if found else 0.0, accuracy_all=float((p_all == y_all).mean()),
               no_face=errors[:20])
    return out


def check_device(device: str) -> None:
    """A device this machine has, else ValueError with one line (before any model or data is loaded)."""
    from .devices import resolve_device

    if device not in ("auto", "cpu", "cuda", "mps") and not (device.startswith("cuda:") and device[5:].isdigit()):
        raise ValueError(f"--device must be auto, cpu, cuda, cuda:N or mps, got {device!r}")
    if device.startswith("cuda:") and torch.cuda.is_available() and int(device[5:]) >= torch.cuda.device_count():
        raise ValueError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    resolve_device(device)


def format_report(m: dict) -> str:
    classes = list(m["per_class"])
    prec = f", {m['precision']}" if m.get("precision") else ""
    usage = (m.get("split_resolved") or {}).get("usage")
    split = f"{m['split']} = {usage}" if usage and usage.lower() != m["split"].replace("_", "") else m["split"]
    lines = [f"{m['checkpoint']} on {m['data']} [{split}, n={m['n']}{', TTA' if m['tta'] else ''}{prec}]"]
    if m["split"] == "photos":
        lines += [f"detector {m['detector']}: face detected in {m['detected']}/{m['photos']} photos "
                  f"({m['detection_rate']:.1%}); sources {m['sources']}",
                  f"accuracy on the faces found {m['accuracy_found']:.4f}   over all photos {m['accuracy_all']:.4f}"
                  " (no face counts wrong)",
                  f"per-class recall below is over all photos; macro F1 {m['macro_f1']:.4f}", ""]
    else:
        lines += [f"accuracy {m['accuracy']:.4f}   macro F1 {m['macro_f1']:.4f}"]
        d = m.get("without_near_copies")
        if d:
            lines.append(f"without the {d['removed']} faces that have a near copy in Training (n={d['n']}): accuracy "
                         f"{d['accuracy']:.4f}   macro F1 {d['macro_f1']:.4f}")
        lines.append("")
    lines += [
             f"{'class':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}"]
    for c in classes:
        pc = m["per_class"][c]
        lines.append(f"{c:<10}{pc['precision']:>10.4f}{pc['recall']:>10.4f}{pc['f1']:>10.4f}{pc['support']:>9}")
    lines += ["", "confusion matrix (rows true, columns predicted)", " " * 10 + "".join(f"{c[:7]:>8}" for c in classes)]
    for c, row in zip(classes, m["confusion_matrix"]):
        lines.append(f"{c:<10}" + "".join(f"{v:>8}" for v in row))
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m fer_core.evaluate", description=__doc__)
    p.add_argument("--checkpoint", required=True)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="FER2013 data (CSV, image folder, .zip)")
    src.add_argument("--photos", help="folder of labelled photos: labels.csv (file,label) or <class>/ subfolders")
    p.add_argument("--compare", metavar="B", help="a second checkpoint to compare with --checkpoint on --data")
    p.add_argument("--detector", default="yunet", choices=("yunet", "haar"), help="face detector for --photos")
    p.add_argument("--split", default="test", choices=SPLIT_NAMES,
                   help="train, public_test, private_test (FER2013's), or the source's own val/test (default test: "
                        "PublicTest in Kaggle's image-folder zip, PrivateTest in the CSV)")
    p.add_argument("--tta", action="store_true", help="average the logits of each face and its mirror")
    p.add_argument("--without-near-copies", action="store_true",
                   help="also report the split without its faces that have a near copy in Training (fer_core.audit)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="auto: bf16 on a CPU with native bf16 (about 2x faster there), else fp32; the model card's "
                        "numbers are fp32")
    a = p.parse_args(argv)
    try:
        check_device(a.device)
        if a.compare:
            if a.photos:
                raise ValueError("--compare works on --data, not on --photos")
            from .compare import compare_checkpoints, format_compare

            m = compare_checkpoints(a.checkpoint, a.compare, a.data, a.split, a.tta, a.device, a.precision)
            print(json.dumps(m) if a.json else format_compare(m))
            return 0
        if a.photos:
            m = evaluate_photos(a.checkpoint, a.photos, a.tta, a.device, a.detector, a.precision)
        else:
            m = evaluate(a.checkpoint, a.data, a.split, a.tta, a.device, a.precision, a.without_near_copies)
    except (DataError, CheckpointError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(m) if a.json else format_report(m))
    return 0


if __name__ == "__main__":
    sys.exit(main())
