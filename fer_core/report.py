"""The course report's study for any model, as one self-contained HTML file (or Markdown + PNGs):

    python -m fer_core.report --checkpoint C --data D [--split test] [--run RUN_DIR ...] [--seed 0]
                              --out report.html [--md DIR]

Sections: the architecture as a layer table (like the report's Keras summary), the training parameters and
curves with a sentence on overfitting, the normalization and augmentation ablations (the report's Table 1, from
runs among --run that differ only in that setting), the confusion matrix with its most-confused pairs in words
and per-class precision/recall, saliency maps of five seeded random faces with their trust scores, and the first
two conv layers' filters and their responses to a random face. Every number comes from the code the dashboard's
pages use (fer_core.evaluate, interpret, saliency, ablation, runstate). The run that trained the checkpoint is
its own run folder, else the --run whose settings are the checkpoint's stored training config.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from . import __version__, ablation, draw, filters, interpret, render
from . import splits as splits_mod
from .checkpoint import CheckpointError, load_model
from .config import options
from .data import atomic_write_bytes, load_split
from .images import DataError
from .metrics import metrics as eval_metrics
from .inference import inference_precision
from .models import layer_table
from .paths import check_output_file
from .report_html import Figure, Section, Table, curves_png, png, to_html, to_markdown
from .runfiles import is_run_dir
from .runstate import Run, read_run
from .saliency import METHOD_NAMES, attribute
from .trust import SANITY_MAX_RHO, trust

SEED_VGG_PARAMS = 3_257_799  # the course report's Keras summary of its network
N_SALIENCY_FACES = 5


@dataclass
class Report:
    title: str
    meta: list[str]
    sections: list[Section]
    seconds: dict = field(default_factory=dict)  # build time of each section

    def html(self) -> str:
        return to_html(self.title, self.meta, self.sections)

    def markdown(self, folder) -> Path:
        return to_markdown(self.title, self.meta, self.sections, folder)


# ----------------------------------------------------------------------------------------------
# 1. architecture


def architecture(model) -> Section:
    name, args = model.model_name, dict(model.model_args)
    rows, total, trainable = layer_table(name, args)
    s = Section("architecture", "1. Architecture")
    s.blocks.append(f"{name}{' ' + json.dumps(args) if args else ''}: {len(rows)} layers, {total:,} parameters "
                    f"({trainable:,} trainable, {total - trainable:,} non-trainable).")
    if name == "seed_vgg":
        s.blocks.append(f"The course report's Keras summary of this network: {SEED_VGG_PARAMS:,} parameters; here "
                        f"{total:,} ({'the same' if total == SEED_VGG_PARAMS else 'they differ'}).")
    s.blocks.append(Table(["Layer (type)", "Output shape", "Param #"],
                          [[f"{n} ({t})", " x ".join(map(str, shape)), f"{p:,}"] for n, t, shape, p in rows]
                          + [["Total params", "", f"{total:,}"], ["Trainable params", "", f"{trainable:,}"],
                             ["Non-trainable params", "", f"{total - trainable:,}"]],
                          caption="Output shapes are channels x height x width for a 48x48 face (PyTorch's order; "
                                  "Keras writes height x width x channels)."))
    return s


# ----------------------------------------------------------------------------------------------
# 2. training


def training_run(checkpoint, meta: dict, runs) -> Run | None:
    """The run that trained the checkpoint: its own run folder, else the first of `runs` whose settings are
    the checkpoint's stored train_config."""
    if checkpoint and is_run_dir(Path(checkpoint).parent):
        return read_run(Path(checkpoint).parent)
    tc = meta.get("train_config") or {}
    for path in runs:
        r = read_run(path)
        if tc and all(r.hyperparameters.get(k) == v for k, v in tc.items()):
            return r
    return None


def overfitting(metrics: list[dict]) -> str:
    """A sentence on overfitting from the numbers: the train-validation accuracy gap at the last epoch and, with
    several epochs, where the validation loss bottomed."""
    last = metrics[-1]
    ta, va = last.get("train_acc"), last.get("val_acc")
    if ta is None or va is None:
        return "No training and validation accuracy were logged, so overfitting cannot be judged."
    gap = (ta - va) * 100
    verdict = ("the model overfits: it fits the training faces far better than unseen ones" if gap > 10 else
               "mild overfitting" if gap > 3 else
               "no sign of overfitting" + (" (training accuracy is measured on augmented faces, harder than the "
                                           "validation faces)" if gap < 0 else ""))
    text = (f"At epoch {last['epoch']} training accuracy is {ta:.4f} and validation accuracy {va:.4f}: a gap of "
            f"{gap:+.1f} points, {verdict}.")
    losses = [(m["val_loss"], m["epoch"]) for m in metrics if m.get("val_loss") is not None]
    if len(losses) > 1:
        low, at = min(losses)
        end = losses[-1][0]
        text += (f" Validation loss bottomed at {low:.4f} (epoch {at}) and ended at {end:.4f}, rising while the "
                 "model kept fitting the training faces." if end > 1.05 * low and at < last["epoch"] else
                 f" Validation loss ended at {end:.4f}, within 5% of its lowest ({low:.4f}, epoch {at}).")
    return text


def _config_rows(hp: dict) -> list[list]:
    known = {o.name: o for o in options()}
    rows = []
    for k, v in hp.items():
        o = known.get(k)
        shown = (o.placeholder if o and o.placeholder else "none") if v is None else (
            json.dumps(v) if isinstance(v, (dict, list)) else v)
        rows.append([k, str(shown)])
    return rows


def training(model, checkpoint, runs) -> Section:
    meta = getattr(model, "checkpoint", {}) or {}
    run = training_run(checkpoint, meta, runs)
    s = Section("training", "2. Training")
    if run is not None and run.metrics:
        hp = run.hyperparameters
        s.blocks.append(f"Run {run.name} ({run.state}, {run.epoch} of {run.epochs} epochs, validated on "
                        f"{hp.get('val_split', '?')}); best validation accuracy "
                        + ("-" if run.best_val_acc is None else f"{run.best_val_acc:.4f}") + ".")
        s.blocks.append(overfitting(run.metrics))
        s.blocks.append(Figure(curves_png(run.metrics), f"run {run.name}: loss and accuracy per epoch "
                               "(train dotted, validation solid)", 800))
    else:
        hp = meta.get("train_config") or {}
        point = meta.get("metrics") or {}
        s.blocks.append("No run folder of this checkpoint was given (pass it with --run RUN_DIR for the curves): "
                        "the training configuration is the one stored in the checkpoint, the numbers those of its "
                        f"epoch {meta.get('epoch', '?')}.")
        if point.get("epoch") is not None:
            s.blocks.append(overfitting([point]))
    if hp:
        s.blocks.append(Table(["Option", "Value"], _config_rows(hp), caption="the training parameters"))
    else:
        s.blocks.append("The checkpoint stores no training configuration.")
    return s


# ----------------------------------------------------------------------------------------------
# 3. ablations (the report's Table 1)


def ablations(runs) -> Section:
    s = Section("ablations", "3. Ablations (the report's Table 1)")
    found = ablation.find(runs)
    s.blocks.append("Best validation accuracy of runs that differ only in one setting (same data, seed and budget). "
                    "Where one run trained longer under a constant learning rate, both are compared within the "
                    "shorter run's epochs.")
    s.blocks.append(Table(["Setting", "Without", "With", "Effect", "Epochs", "The report: without -> with"],
                          ablation.table1(found)))
    s.blocks += [ablation.missing_text(k) for k, row in found.items() if row is None]
    return s


# ----------------------------------------------------------------------------------------------
# 4. confusion matrix


def _confused_with(rates, classes, name: str) -> str | None:
    if name not in classes:
        return None
    i = list(classes).index(name)
    row = np.array(rates[i], float)
    row[i] = -1
    j = int(row.argmax())
    return f"{name} most often for {classes[j]} ({rates[i][j]:.0%} of {name} faces)" if row[j] > 0 else None


def confusion_section(model, faces, checkpoint, preds) -> Section:
    classes = list(model.classes)
    m = eval_metrics(preds.true, preds.pred, classes)
    counts, rates = interpret.confusion(preds.true, preds.pred, len(classes))
    where = splits_mod.label(faces.resolved) if faces.resolved is not None else faces.split
    s = Section("confusion", "4. Confusion matrix")
    s.blocks.append(f"Accuracy {m['accuracy']:.4f} on {len(faces):,} faces of the {where} split of {faces.source} "
                    f"(macro F1 {m['macro_f1']:.4f}; {inference_precision(next(model.parameters()).device)} "
                    "inference, what python -m fer_core.evaluate prints for the same checkpoint and data).")
    pairs = interpret.most_confused(counts, classes, k=5)
    rows_total = counts.sum(1)
    s.blocks += [f"{p['true_name']} faces are taken for {p['pred_name']}: {p['count']} of {rows_total[p['true']]} "
                 f"({p['rate']:.0%})." for p in pairs] or ["No face is misclassified."]
    said = [t for t in (_confused_with(rates, classes, c) for c in ("disgust", "fear")) if t]
    if said:
        s.blocks.append("The course report read disgust as angry and fear as sad; here the model takes "
                        + " and ".join(said) + ".")
    s.blocks.append(Table(["true \\ predicted"] + classes,
                          [[c] + [int(v) for v in counts[i]] for i, c in enumerate(classes)],
                          caption="faces per cell (rows: true class); shading: the share of the row",
                          shade=[[None] + [float(v) for v in rates[i]] for i in range(len(classes))]))
    s.blocks.append(Table(["Class", "Precision", "Recall", "F1", "Support"],
                          [[r["class"], f"{r['precision']:.3f}", f"{r['recall']:.3f}", f"{r['f1']:.3f}", r["support"]]
                           for r in interpret.class_table(preds.true, preds.pred, classes)]))
    return s


# ----------------------------------------------------------------------------------------------
# 5. saliency and 6. filters


def saliency_section(model, prep, faces, preds, picks) -> Section:
    classes = list(model.classes)
    s = Section("saliency", "5. Saliency maps")
    s.blocks.append(f"{len(picks)} faces drawn at random (seeded), each explained for its predicted class. Trust: "
                    "the mean gain of deletion and insertion over a random pixel order (above 0: the map ranks pixels "
                    "better than chance); sanity: the rank correlation with the map of a randomly initialized copy "
                    f"of the network (passed below {SANITY_MAX_RHO}).")
    x, targets = faces.x[picks], preds.pred[picks]
    maps = {"vanilla": attribute(model, prep, x, targets, "vanilla")}
    try:
        maps["gradcam"] = attribute(model, prep, x, targets, "gradcam")
    except ValueError as e:  # no conv layer
        s.blocks.append(str(e))
    rows = []
    for j, i in enumerate(picks):
        t = int(targets[j])
        figs = [Figure(png(draw.upscale(x[j], 3)), f"#{i}: {classes[int(faces.y[i])]}, predicted {classes[t]} "
                       f"({preds.confidence[i]:.0%})")]
        for method, smaps in maps.items():
            tr = trust(model, prep, x[j], t, method, smap=smaps[j])
            ok = "passed" if tr["sanity_passed"] else "failed"
            figs.append(Figure(png(draw.overlay(x[j], smaps[j], scale=3)),
                               f"{METHOD_NAMES[method]}: trust {tr['score']:+.3f}, sanity {tr['sanity_spearman']:.2f} {ok}"))
            rows.append([f"#{i}", METHOD_NAMES[method], f"{tr['deletion_gain']:+.3f}", f"{tr['insertion_gain']:+.3f}",
                         f"{tr['score']:+.3f}", f"{tr['sanity_spearman']:.2f}", ok])
        s.blocks.append(figs)
    s.blocks.append(Table(["Face", "Method", "Deletion gain", "Insertion gain", "Trust", "Sanity rho", "Sanity"], rows))
    return s


def filters_section(model, prep, faces, k: int) -> Section:
    s = Section("filters", "6. Filters of the first two conv layers")
    try:
        convs = filters.conv_layers(model)
    except ValueError as e:
        convs, why = [], str(e)
    if not convs:
        s.blocks.append(locals().get("why") or "The model has no convolutional layer.")
        return s
    face, label = faces.x[k], model.classes[int(faces.y[k])]
    s.blocks.append(f"Responses to face #{k} ({label}), drawn at random (seeded).")
    s.blocks.append(Figure(png(draw.upscale(face, 3)), f"#{k}: {label}"))
    for layer in range(min(2, len(convs))):
        w = filters.filter_weights(model, layer)
        resp = filters.filter_responses(model, prep, face, layer=layer)
        conv = model.features[convs[layer]]
        mean = f", each averaged over its {conv.in_channels} input channels" if conv.in_channels > 1 else ""
        s.blocks.append([
            Figure(png(render.filter_grid(w, ncols=16, scale=10, numbered=True, pad=4)),
                   f"conv {layer + 1} (features.{convs[layer]}): {len(w)} filters {w.shape[1]}x{w.shape[2]}{mean}; "
                   "red excites, blue inhibits"),
            Figure(png(render.response_grid(resp, ncols=16, scale=max(1, 48 // resp.shape[1]), numbered=True,
                                            pad=3)),
                   f"conv {layer + 1}: {len(resp)} feature maps {resp.shape[1]}x{resp.shape[2]} of face #{k}, "
                   "after the activation, each on its own range")])
    return s


# ----------------------------------------------------------------------------------------------


def build(model, prep, faces, checkpoint=None, runs=(), seed: int = 0, progress=None) -> Report:
    """The whole report for `model` on a FaceSet; `runs`: run folders for the training and ablation sections.
    progress(done, total, what) is called before each section."""
    checkpoint = checkpoint or getattr(model, "checkpoint", {}).get("path")
    runs = [Path(r) for r in runs]
    rng = np.random.default_rng(seed)
    picks = np.sort(rng.choice(len(faces), size=min(N_SALIENCY_FACES, len(faces)), replace=False))
    face_k = int(rng.integers(len(faces)))
    preds = interpret.predictions(model, prep, faces, checkpoint=checkpoint)
    steps = [("architecture", lambda: architecture(model)), ("training", lambda: training(model, checkpoint, runs)),
             ("ablations", lambda: ablations(runs)),
             ("confusion", lambda: confusion_section(model, faces, checkpoint, preds)),
             ("saliency", lambda: saliency_section(model, prep, faces, preds, picks)),
             ("filters", lambda: filters_section(model, prep, faces, face_k))]
    sections, seconds = [], {"predictions": preds.seconds}
    for n, (name, make) in enumerate(steps):
        if progress:
            progress(n, len(steps), name)
        t0 = time.perf_counter()
        sections.append(make())
        seconds[name] = time.perf_counter() - t0
    meta = [f"checkpoint {checkpoint or '(in memory)'}",
            f"data {faces.source}, split {faces.split}, {len(faces):,} faces; seed {seed}",
            f"runs: {', '.join(str(r) for r in runs) or 'none given'}",
            f"built {datetime.now():%Y-%m-%d %H:%M} by fer_core {__version__} (python -m fer_core.report)"]
    return Report(f"The course report's study of {model.model_name}", meta, sections, seconds)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m fer_core.report", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True, help="FER2013 data (CSV, image folder, .zip, .npz)")
    p.add_argument("--split", default="test", help="the split evaluated and explained (default test)")
    p.add_argument("--run", action="append", default=[], metavar="RUN_DIR",
                   help="a run folder (repeatable): the run that trained the checkpoint, ablation runs")
    p.add_argument("--seed", type=int, default=0, help="seed of the random faces (default 0)")
    p.add_argument("--out", required=True, help="the HTML file to write")
    p.add_argument("--md", metavar="DIR", help="also write DIR/report.md with its figures as PNG files")
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    try:
        bad = next((r for r in a.run if not is_run_dir(r)), None)
        if bad is not None:
            raise DataError(f"--run {bad}: not a run folder (no status.json, config.json or launch.json)")
        out = check_output_file(a.out, [a.checkpoint, a.data, *a.run], "--out")
        model, prep = load_model(a.checkpoint)
        report = build(model, prep, load_split(a.data, a.split), a.checkpoint, a.run, a.seed)
        text = report.html().encode()
        atomic_write_bytes(out, text)
        md = report.markdown(a.md) if a.md else None
    except (DataError, CheckpointError, ValueError) as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({len(text) / 1024:,.0f} KB, {len(report.sections)} sections) in "
          f"{time.perf_counter() - t0:.1f} s" + (f"; Markdown: {md}" if md else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
