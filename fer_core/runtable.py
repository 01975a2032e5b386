"""What the Train page shows of its runs, as plain data (no Streamlit): the runs table's rows, their filter and
order, its number columns, the live panel's progress line, the curves' smoothing and the parallel-coordinates
axes. The page (views/train.py) only draws them. Also Home's line of what a checkpoint was trained for and on what
(`provenance`), which reads the same recipe fields, and the real-photo lines of Home, Classify and Video
(`photo_line`, `photo_advice`), which read a checkpoint's stamped real-photo evaluation."""
from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

import pandas as pd

from .durations import format_seconds
from .runfiles import parse_time
from .runstate import Run
from .splits import USAGE

# number columns of the table: (grid format for st.column_config.NumberColumn, text format for a column with gaps)
NUMBER_FORMATS = {"best val acc": ("percent", "{:.1%}"), "duration (min)": ("%.1f", "{:.1f}"),
                  "images/s": ("%.0f", "{:,.0f}"), "lr": ("%.4g", "{:.4g}"), "smoothing": ("%g", "{:g}")}
SORT_COLUMNS = ["started", "best val acc", "duration (min)", "images/s", "run", "state", "model", "lr"]


def augmentation_text(hp: dict) -> str:
    """The augmentation column: "off", or the geometric settings, the flip and every other setting that is on."""
    def extras(*keys):  # " erase 0.5 photometric 0.3" for the settings that are on
        return "".join(f" {k} {hp[k]:g}" for k in keys if hp.get(k))

    aug = "off" if not hp.get("augment", True) else (
        f"rot {hp.get('rotation', 0):g} zoom {hp.get('zoom', 0):g} shift {hp.get('shift', 0):g}"
        + ((" alternating flip" if hp.get("alternate_flip") else " flip") if hp.get("flip") else "")
        + extras("erase", "photometric"))
    return aug + extras("mixup", "cutmix")  # mixing applies with or without the per-face augmentation


def teacher_names(teacher: str) -> str:
    """'checkpoints/a.pt, runs/x/best.pt' -> 'a.pt, best.pt'."""
    return ", ".join(Path(p.strip()).name for p in teacher.split(",") if p.strip())


def teacher_text(hp: dict) -> str:
    """The teacher column: each teacher checkpoint's file name and the distillation settings, "-" without one."""
    if not hp.get("teacher"):
        return "-"
    settings = f"alpha {hp.get('distill_alpha', 0.5):g}, T {hp.get('distill_temperature', 4.0):g}"
    return f"{teacher_names(hp['teacher'])} ({settings})"


# what a run's --val-split holds: FER2013's splits by their own names; a source's val is read from PublicTest
VAL_NAMES = {**USAGE, "val": "PublicTest", "test": "its test split"}


def provenance(meta: dict) -> str:
    """What the active model was trained for and on what, from its checkpoint: the file's own note (the shipped
    models say what they are for), then the recipe's length, its teacher, where it trained and for how long."""
    tc = meta.get("train_config") or {}
    parts = [str(meta["notes"]).rstrip(".") + "."] if meta.get("notes") else []
    if tc:
        teacher = teacher_names(str(tc.get("teacher") or ""))
        split = tc.get("val_split")
        parts.append(f"Trained for {meta.get('epoch', tc.get('epochs', '?'))} epochs on FER2013 Training"
                     + (" less a held-out tenth (holdout), validated on that tenth" if split == "holdout"
                        else f", validated on {VAL_NAMES.get(split, split or '?')}")
                     + (f", distilled from {teacher}" if teacher else "") + ".")
    if meta.get("hardware"):
        took = f" in {meta['elapsed'] / 60:.0f} minutes" if isinstance(meta.get("elapsed"), (int, float)) else ""
        parts.append(f"Hardware: {meta['hardware']}{took}.")
    return " ".join(parts)


# A checkpoint is pointed to only when it beats the active one on the same photos by this much: about one standard
# error of an accuracy near 0.7 on 108 photos (4.4 points), so a difference of a photo or two never moves anybody.
PHOTO_MARGIN = 0.05


def photo_score(meta: dict) -> dict | None:
    """A checkpoint's stamped real-photo evaluation (scripts/stamp_evaluation.py --photos), or None when it has
    none or a malformed one (a user's run, an older file)."""
    pe = meta.get("photo_evaluation")
    if not isinstance(pe, dict):
        return None
    acc, n = pe.get("accuracy"), pe.get("photos")
    ok = (isinstance(acc, (int, float)) and isinstance(n, int) and not isinstance(acc, bool)
          and not isinstance(n, bool) and isinstance(pe.get("set"), str) and 0 <= acc <= 1 and n > 0)
    return pe if ok else None


def photo_line(meta: dict) -> str | None:
    """One sentence: how the checkpoint does on real photos, or None when it was not measured."""
    pe = photo_score(meta)
    if pe is None:
        return None
    return (f"On real photos: {pe['accuracy']:.1%} of {pe['photos']} {pe['set']} (the default face crop, single pass, "
            f"{pe.get('precision', 'fp32')}).")


def photo_advice(active: str, metas: dict[str, dict], label=str) -> tuple[str, str] | None:
    """(path, sentence) naming the checkpoint of `metas` (path -> metadata; the shipped ones) that scores highest on
    the same real photos as the active one, when it beats it by PHOTO_MARGIN or more; else None (the active model
    is the best measured, or unmeasured: nothing is known to compare)."""
    mine = photo_score(metas.get(active) or {})
    if mine is None:
        return None
    same_photos = (mine["set"], mine["photos"])
    rivals = [(pe["accuracy"], path) for path, meta in metas.items()
              if path != active and (pe := photo_score(meta)) and (pe["set"], pe["photos"]) == same_photos]
    if not rivals:
        return None
    acc, path = max(rivals)
    if round(acc - mine["accuracy"], 9) < PHOTO_MARGIN:  # rounded: 0.75 - 0.70 is 0.0499... in floats
        return None
    return path, (f"On real photos, {label(path)} is more accurate than the active model: {acc:.1%} against "
                  f"{mine['accuracy']:.1%} on {mine['photos']} {mine['set']}. The active model was chosen for "
                  "FER2013's own faces (model card: checkpoints/README.md, Real photos).")


def run_row(r: Run) -> dict:
    """One row of the runs table. Numbers stay numbers (they sort); a missing one is NaN (an empty cell, never
    "None"); a column that mixes numbers and words is text throughout (a mixed column breaks pyarrow)."""
    hp = r.hyperparameters
    started = parse_time(r.status.get("started") or r.launch.get("created"))
    n = hp.get("max_train_samples")
    acc, dur, ips = r.best_val_acc, r.duration, r.images_per_s
    nan = float("nan")
    bn_lr = f" · BN lr x{hp['bn_lr']:g}" if hp.get("bn_lr", 1) != 1 else ""
    return {
        "run": r.name, "state": r.state, "epoch": f"{r.epoch}/{r.epochs}",
        "best val acc": nan if acc is None else acc, "duration (min)": nan if dur is None else dur / 60,
        "images/s": nan if ips is None else ips, "val split": hp.get("val_split") or "-",  # what "best" was chosen on
        "device": r.device or "-", "model": hp.get("model", "?"),
        "batch": hp.get("batch_size"), "optimizer": (hp.get("optimizer") or "-") + bn_lr,
        "lr": hp.get("lr"),
        "schedule": hp.get("schedule") or "-", "augmentation": augmentation_text(hp),
        "normalize": hp.get("normalize") or "-",
        "smoothing": hp.get("label_smoothing"), "samples": f"{n:,}" if n else "all",
        "averaging": (f"EMA {hp['ema']:g}" if hp.get("ema") else "-") + (" · flip TTA" if hp.get("tta") else ""),
        "teacher": teacher_text(hp),
        "started": datetime.fromtimestamp(started).strftime("%Y-%m-%d %H:%M") if started is not None else "-",
        "unreadable": r.unreadable or "-",  # what of its files could not be read (it can still be deleted)
    }


def select_rows(table: pd.DataFrame, query: str = "", states=(), sort_by: str = "started",
                descending: bool = True) -> pd.DataFrame:
    """The rows with `query` in any column (case-insensitive) and a state among `states` (all when empty), sorted
    by `sort_by` (numbers as numbers, missing ones last; ties keep the table's order)."""
    shown = table
    if query.strip():
        hit = table.astype(str).apply(lambda col: col.str.contains(query.strip(), case=False, regex=False))
        shown = shown[hit.any(axis=1)]
    if states:
        shown = shown[shown["state"].isin(states)]
    return shown.sort_values(sort_by, ascending=not descending, na_position="last", kind="stable")


def format_numbers(shown: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """(the table as shown, its NUMBER_FORMATS columns that stay numbers). A number column with a gap would show
    the gap as "None": it becomes text, "-" in the gap (sorting already happened on the numbers); a complete one
    stays numbers, sortable from its header. Other gaps become "-"."""
    shown, numeric = shown.copy(), []
    for col, (_, text_fmt) in NUMBER_FORMATS.items():
        values = pd.to_numeric(shown[col], errors="coerce")
        if values.isna().any():
            shown[col] = [("-" if pd.isna(v) else text_fmt.format(v)) for v in values]
        else:
            shown[col] = values
            numeric.append(col)
    return shown.fillna("-"), numeric


def progress_line(r: Run) -> tuple[float, str]:
    """The live panel's progress bar: (fraction of the epochs done, within the epoch in progress too; its text:
    epochs, steps, images/s, elapsed and time left)."""
    p = r.progress
    in_epoch = bool(p) and p.get("epoch", 0) > r.epoch
    done = r.epoch + (p["step"] / p["steps"] if in_epoch else 0.0)
    text = f"epoch {r.epoch}/{r.epochs}"
    if in_epoch:
        text += f" · epoch {p['epoch']}: step {p['step']}/{p['steps']}"
    if r.images_per_s:
        text += f" · {r.images_per_s:,.0f} images/s"
    text += f" · elapsed {format_seconds(r.duration)}"
    if r.active:
        eta = r.eta
        text += f" · ETA {format_seconds(eta)}" if eta is not None else " · ETA after the first steps"
    return min(1.0, done / max(1, r.epochs)), text


def smooth(values, weight: float) -> list[float]:
    """TensorBoard's smoothing: an exponential moving average, debiased so the first points are not pulled
    to zero; gaps (NaN) are carried over."""
    out, last, n = [], 0.0, 0
    for v in values:
        if v is None or not math.isfinite(v):
            out.append(float("nan"))
            continue
        last, n = last * weight + (1 - weight) * v, n + 1
        out.append(last / (1 - weight ** n) if weight else v)
    return out


def logged_metrics(runs) -> list[str]:
    """Every numeric metric the runs logged (epoch aside), sorted: what the curve overlay can show."""
    return sorted({k for r in runs for m in r.metrics for k, v in m.items()
                   if isinstance(v, (int, float)) and k != "epoch"})


def metric_curve(metrics: list[dict], metric: str) -> tuple[list, list[float]]:
    """(epochs, values) of one logged metric; NaN where an epoch lacks it."""
    ys = [m.get(metric) for m in metrics]
    return [m["epoch"] for m in metrics], [float(v) if isinstance(v, (int, float)) else float("nan") for v in ys]


def parcoords_dims(scored) -> list[dict]:
    """The axes of hyperparameters against the best validation accuracy (W&B's parallel-coordinates panel), one
    value per run: categorical axes (model, optimizer) as indices with their names as ticks."""
    models = sorted({r.hyperparameters.get("model", "?") for r in scored})
    opts = sorted({r.hyperparameters.get("optimizer", "?") for r in scored})

    def num(r, k, default=0.0):
        v = r.hyperparameters.get(k)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else default

    return [
        dict(label="model", values=[models.index(r.hyperparameters.get("model", "?")) for r in scored],
             tickvals=list(range(len(models))), ticktext=models),
        dict(label="optimizer", values=[opts.index(r.hyperparameters.get("optimizer", "?")) for r in scored],
             tickvals=list(range(len(opts))), ticktext=opts),
        dict(label="log10 lr", values=[math.log10(num(r, "lr", 1e-3)) for r in scored]),
        dict(label="batch", values=[num(r, "batch_size") for r in scored]),
        dict(label="epochs", values=[num(r, "epochs") for r in scored]),
        dict(label="label smoothing", values=[num(r, "label_smoothing") for r in scored]),
        dict(label="rotation", values=[num(r, "rotation") if r.hyperparameters.get("augment", True) else 0.0
                                       for r in scored]),
        dict(label="train faces", values=[num(r, "max_train_samples", float(r.config.get("data", {}).get(
            "train_size") or 0)) for r in scored]),
        dict(label="best val acc", values=[r.best_val_acc for r in scored]),
    ]
