"""The course report's ablations (its Table 1): the full recipe against the same without normalization and
without augmentation.

`launch()` starts the three runs (same seed, budget and data) named `<group>-full`, `<group>-no-normalization`
and `<group>-no-augmentation`, so `group_runs()` finds them again from any one of them. `find()` looks among
any runs for pairs that differ only in one setting (by their config.json, whatever their names) and gives each
ablation's row: the best validation accuracy with and without the setting, beside the report's numbers.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from .config import TrainConfig
from .runs import LaunchError, check_run_name, launch as launch_run, make_config
from .runstate import Run, read_run

# the course report's Table 1: best validation accuracy (without the setting, with it)
REPORT_TABLE1 = {"normalize": (0.60, 0.65), "augment": (0.55, 0.65)}
SETTINGS = {"normalize": "normalization", "augment": "augmentation"}
VARIANTS = {"full": {}, "no-normalization": {"normalize": "none"}, "no-augmentation": {"augment": False}}
# where and how fast a run trains, not what it learns: left out of "differ only in"
NOT_THE_EXPERIMENT = ("data", "device", "checkpoint_every", "eval_batch_size", "channels_last", "amp", "cpu_fast")
# what augment=False turns off along with it (fer_core.steps.make_batch): inert in the run without augmentation
PER_FACE_AUGMENTATION = ("flip", "rotation", "zoom", "shift", "erase", "photometric", "alternate_flip")


def configs(options: dict | TrainConfig) -> dict[str, TrainConfig]:
    """The three runs' validated configs from the full recipe's: variant suffix -> TrainConfig."""
    base = asdict(make_config(options))
    if base["normalize"] == "none" or not base["augment"]:
        raise LaunchError("the report ablations start from a recipe with normalization and augmentation on "
                          f"(here normalization {base['normalize']}, augmentation {'on' if base['augment'] else 'off'})")
    return {suffix: make_config({**base, **change}) for suffix, change in VARIANTS.items()}


def default_group() -> str:
    return f"ablation-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def launch(options: dict | TrainConfig, runs_dir, group: str | None = None) -> list[Path]:
    """Launch the three runs of the report's ablations; -> their run folders (full recipe first). Every name is
    checked before the first run starts, so a taken name launches none."""
    cfgs = configs(options)
    group = (group or "").strip() or default_group()
    names = {suffix: f"{group}-{suffix}" for suffix in cfgs}
    for name in names.values():
        check_run_name(name)
        if (Path(runs_dir) / name).exists():
            raise LaunchError(f"a run named {name!r} already exists in {runs_dir}; choose another run name")
    return [launch_run(cfg, runs_dir, name=names[suffix]) for suffix, cfg in cfgs.items()]


def group_of(run_dir) -> str | None:
    """The group a run of launch() belongs to ('ablation-x' for 'ablation-x-full'), else None."""
    name = Path(run_dir).name
    return next((name[: -len(s) - 1] for s in VARIANTS if name.endswith("-" + s) and len(name) > len(s) + 1), None)


def group_runs(run_dir) -> list[Path]:
    """The runs of the ablation group `run_dir` belongs to that exist beside it (itself included); [run_dir]
    alone for a run of no group."""
    run, group = Path(run_dir), group_of(run_dir)
    if group is None:
        return [run]
    return [p for p in (run.parent / f"{group}-{s}" for s in VARIANTS) if p.is_dir()]


@dataclass
class Row:
    setting: str  # "normalize" or "augment"
    with_run: Run
    without_run: Run
    epochs: int  # epochs compared (the shorter run's, when a constant learning rate lets them differ)
    with_acc: float | None
    without_acc: float | None

    @property
    def name(self) -> str:
        return SETTINGS[self.setting]

    @property
    def effect(self) -> float | None:
        if self.with_acc is None or self.without_acc is None:
            return None
        return self.with_acc - self.without_acc

    @property
    def report(self) -> tuple[float, float]:
        return REPORT_TABLE1[self.setting]


def _hyperparameters(run: Run) -> dict:
    """A run's settings, a field missing from an older run read as TrainConfig's default."""
    return {**asdict(TrainConfig()), **run.hyperparameters}


def _source(run: Run) -> str:
    return str((run.config.get("data") or {}).get("source") or run.hyperparameters.get("data") or "")


def difference(a: Run, b: Run) -> tuple[set[str], bool]:
    """(the settings in which two runs differ, beyond NOT_THE_EXPERIMENT; whether they trained on the same
    source). The epochs count as no difference under a constant learning rate with no warm-up and no
    low-resolution start, where the shorter run is the longer one's beginning."""
    ha, hb = _hyperparameters(a), _hyperparameters(b)
    diff = {k for k in ha.keys() | hb.keys() if k not in NOT_THE_EXPERIMENT and ha.get(k) != hb.get(k)}
    if diff & {"epochs"} and all(h["schedule"] == "constant" and not h["warmup_epochs"] and not h["low_res"]
                                 for h in (ha, hb)):
        diff.discard("epochs")
    if "augment" in diff:
        diff -= set(PER_FACE_AUGMENTATION)
    return diff, _source(a) == _source(b)


def best_within(run: Run, epochs: int) -> float | None:
    """The best validation accuracy of a run's first `epochs` epochs (Run.best_val_acc when that is all)."""
    if run.epochs and epochs >= run.epochs:
        return run.best_val_acc
    accs = [m["val_acc"] for m in run.metrics if m["epoch"] <= epochs and m.get("val_acc") is not None
            and math.isfinite(m["val_acc"])]
    return max(accs) if accs else None


def _has(setting: str, run: Run) -> bool:
    h = _hyperparameters(run)
    return h["normalize"] != "none" if setting == "normalize" else bool(h["augment"])


def _kinship(a: Run, b: Run) -> int:
    """0: runs of one launch() group, 1: runs in one folder, 2: others (find() prefers the closest pair)."""
    if group_of(a.path) is not None and group_of(a.path) == group_of(b.path):
        return 0
    return 1 if a.path.parent.resolve() == b.path.parent.resolve() else 2


def find(run_dirs) -> dict[str, Row | None]:
    """For each setting of REPORT_TABLE1 the pair among `run_dirs` that differs only in it, on the same data
    (one run with the setting, one without): of a launch() group before runs of one folder before others, then
    of the same epochs, then in the order given. None where no pair does."""
    found = [r for r in (read_run(p) for p in dict.fromkeys(Path(p) for p in run_dirs)) if r.metrics]
    pairs: dict[str, list] = {s: [] for s in REPORT_TABLE1}
    for i, a in enumerate(found):
        for j, b in enumerate(found[i + 1 :], i + 1):
            diff, same_data = difference(a, b)
            s = next(iter(diff)) if len(diff) == 1 else None
            if same_data and s in pairs and _has(s, a) != _has(s, b):
                pairs[s].append(((_kinship(a, b), a.epochs != b.epochs, i, j), a, b))
    out: dict[str, Row | None] = {}
    for s, cands in pairs.items():
        if not cands:
            out[s] = None
            continue
        _, a, b = min(cands, key=lambda c: c[0])
        with_run, without_run = (a, b) if _has(s, a) else (b, a)
        n = min(a.epoch, b.epoch)
        out[s] = Row(s, with_run, without_run, n, best_within(with_run, n), best_within(without_run, n))
    return out


def table1(found: dict[str, Row | None]) -> list[list]:
    """The rows of the report's Table 1 for find()'s result: setting, without, with (accuracy and run), effect,
    epochs compared, the report's numbers. A run is named by its folder, with its parent's name where two of
    the runs shown share a name."""
    runs = [r for row in found.values() if row for r in (row.with_run, row.without_run)]
    names = [r.name for r in runs]

    def label(r: Run) -> str:
        return f"{r.path.parent.name}/{r.name}" if names.count(r.name) > 1 and len(
            {x.path.resolve() for x in runs if x.name == r.name}) > 1 else r.name

    def pct(v) -> str:
        return "-" if v is None else f"{v * 100:+.1f} points"

    def acc(v, r) -> str:
        return f"{'-' if v is None else f'{v:.4f}'} ({label(r)})"

    rows = []
    for s, row in found.items():
        lo, hi = REPORT_TABLE1[s]
        report = f"{lo:.2f} -> {hi:.2f} ({pct(hi - lo)})"
        rows.append([SETTINGS[s], "missing", "missing", "-", "-", report] if row is None else
                    [row.name, acc(row.without_acc, row.without_run), acc(row.with_acc, row.with_run),
                     pct(row.effect), row.epochs, report])
    return rows


def missing_text(setting: str) -> str:
    return (f"No pair of the runs given differs only in {SETTINGS[setting]} (same data, seed and budget): launch "
            "the Train page's report ablations preset, or pass such runs with --run.")


def duration_text(cfg: TrainConfig, seconds_one_run: float) -> str:
    """What the Train page says of the report ablations of the form's settings, with one run's estimate."""
    if cfg.normalize == "none" or not cfg.augment:
        return "Report ablations need normalization and augmentation on in these settings."
    from .durations import format_seconds

    return (f"Report ablations (the button beside Launch run): these settings three times (as set, normalization "
            f"none, augmentation off), seed {cfg.seed}, {cfg.epochs} epochs each: about "
            f"**{format_seconds(3 * seconds_one_run)}** of this machine in all; the three train at the same time "
            "and share it.")
