"""TrainConfig: the one description of a training run.

Each field carries its help text, limits, choices and Train-form label as metadata; the command line of
`python -m fer_core.train`, the checks of `validate()` and the dashboard's Train form all derive from it, and a
launched run is handed the whole config as JSON (`--config FILE`), so no setting is lost on the way.
"""
from __future__ import annotations

import json
import math
import sys
import typing
from dataclasses import asdict, dataclass, field, fields
from functools import cache
from pathlib import Path

import torch

from .data import atomic_write_bytes
from .sources import CLASSES
from .splits import SPLIT_NAMES
from .models import create_model, list_models
from .preprocess import NORM_MODES, AugmentConfig

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "onecycle", "step")
DEVICES = ("auto", "cuda", "mps", "cpu")  # and cuda:N
SECTIONS = ("source", "main", "advanced")  # the Train form: the data row, the main grid, the "Advanced" expander


def option(default, help: str, label: str, section: str = "main", lo=None, hi=None, step=None, choices=None,
           fmt=None, placeholder=None):
    """A TrainConfig field with its metadata. `lo`/`hi` are inclusive bounds, enforced by validate() and the
    form alike; `placeholder` is what None means (it makes None a valid value)."""
    meta = dict(help=help, label=label, section=section, lo=lo, hi=hi, step=step, choices=choices, fmt=fmt,
                placeholder=placeholder)
    if isinstance(default, dict):
        return field(default_factory=dict, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    data: str = option("", "FER2013 source with a train split: .csv/.csv.gz, image folder, .zip or .npz",
                       "Data source", section="source")
    model: str = option("seed_vgg", "architecture", "Model", choices=tuple(list_models()))
    model_args: dict = option({}, 'JSON object of model keyword arguments, e.g. {"width": 8} for a tiny mini_cnn',
                              "Model arguments (JSON)")
    epochs: int = option(200, "epochs to train", "Epochs", lo=1, step=1)
    batch_size: int = option(64, "training batch size", "Batch size", lo=1, step=16)
    optimizer: str = option("adam", "optimizer", "Optimizer", choices=OPTIMIZERS)
    lr: float = option(1e-3, "peak learning rate", "Learning rate", lo=1e-7, step=1e-4, fmt="%.6g")
    schedule: str = option("constant", "learning-rate schedule", "LR schedule", choices=SCHEDULES)
    weight_decay: float | None = option(None, "weight decay; by default 0 for adam, 0.05 for adamw, 5e-4 for sgd",
                                        "Weight decay", lo=0.0, step=1e-4, fmt="%.6g",
                                        placeholder="optimizer default")
    augment: bool = option(True, "augment the training faces", "Augmentation")
    flip: bool = option(True, "random horizontal flips", "Horizontal flip")
    rotation: float = option(30.0, "largest random rotation, in degrees", "Rotation (degrees)", lo=0.0, hi=180.0,
                             step=5.0)
    zoom: float = option(0.25, "largest random zoom, as a fraction", "Zoom", lo=0.0, hi=0.95, step=0.05)
    shift: float = option(0.0, "largest random shift, as a fraction of the side", "Shift", lo=0.0, hi=0.95,
                          step=0.05)
    erase: float = option(0.0, "random-erasing probability", "Random erasing p", lo=0.0, hi=1.0, step=0.1)
    photometric: float = option(0.0, "photometric augmentation strength, 0-1: random contrast, brightness, gamma, "
                                "blur or sharpening and noise per face, for photos and webcams unlike FER2013's "
                                "(0: off)", "Photometric augmentation", lo=0.0, hi=1.0, step=0.1)
    mixup: float = option(0.0, "mixup: blend each training face with another and their labels alike, with a weight "
                          "drawn from Beta(a, a) per batch; a, e.g. 0.2 (0: off)", "Mixup alpha", section="advanced",
                          lo=0.0, hi=10.0, step=0.1)
    cutmix: float = option(0.0, "cutmix: paste a box of another training face, labels weighted by area, Beta(a, a); "
                           "a, e.g. 1.0 (0: off; with mixup too, each batch takes one of the two)", "CutMix alpha",
                           section="advanced", lo=0.0, hi=10.0, step=0.1)
    normalize: str = option("pixel", "pixel: per-pixel mean/std of the training set; global: one mean/std; "
                            "none: /255 only", "Normalization", choices=NORM_MODES)
    label_smoothing: float = option(0.0, "label smoothing", "Label smoothing", lo=0.0, hi=0.99, step=0.05)
    low_res: int = option(0, "progressive resizing: the first epoch trains on faces resampled to this side in "
                          "pixels (16-47), growing linearly to 48 over --low-res-epochs epochs; cheaper early "
                          "epochs, every evaluation at 48 (0: off)",
                          "Low-resolution start (px)", section="advanced", lo=0, hi=47, step=4)
    low_res_epochs: int = option(0, "epochs over which the training side grows from --low-res to 48 pixels",
                                 "Low-resolution epochs", section="advanced", lo=0, step=1)
    warmup_epochs: float = option(0.0, "epochs of linear learning-rate warm-up (at most --epochs)",
                                  "Warm-up epochs", lo=0.0, step=1.0)
    alternate_flip: bool = option(False, "derandomised flip: each face is mirrored on every other epoch (a coin per "
                                  "face picks which), instead of a coin per face and epoch (airbench)",
                                  "Alternating flip", section="advanced")
    ema: float = option(0.0, "weight averaging: validation, best.pt and last.pt's weights are an exponential moving "
                        "average of the trained weights and batch-norm statistics, decay per step min(EMA, "
                        "(1 + t) / (10 + t)) (0: off; 0.99-0.999 typical)", "EMA decay", lo=0.0, hi=0.9999,
                        step=0.001, fmt="%.4g")
    whiten_init: bool = option(False, "start the first convolution's filters as the whitening transform of the "
                               "training faces' 3x3 patches (and its negatives; airbench)", "Whitening init",
                               section="advanced")
    bn_lr: float = option(1.0, "learning-rate multiplier for the batch-norm weights and biases, which also get no weight "
                          "decay (airbench trains them faster); 1: as every other parameter, with weight decay",
                          "Batch-norm LR multiplier", section="advanced", lo=0.01, hi=1000.0, step=1.0, fmt="%.4g")
    teacher: str = option("", "knowledge distillation: teacher checkpoint(s), comma-separated (their probabilities "
                          "averaged), each face's target precomputed as is and mirrored; empty: off",
                          "Teacher checkpoint(s)", section="advanced")
    distill_alpha: float = option(0.5, "weight of the teacher's soft targets in the loss (the labels get 1 - it)",
                                  "Distillation weight", section="advanced", lo=0.0, hi=1.0, step=0.1)
    distill_temperature: float = option(4.0, "softmax temperature of the teacher's and the student's probabilities "
                                        "in the distillation term (scaled by T^2)", "Distillation temperature",
                                        section="advanced", lo=0.1, hi=100.0, step=0.5)
    tta: bool = option(False, "validate with flip test-time augmentation: each face's probabilities averaged "
                       "with its mirror's (the Home card's 'With flip TTA'); twice the validation cost",
                       "Flip TTA in validation", section="advanced")
    seed: int = option(0, "random seed", "Seed", lo=0, step=1)
    device: str = option("auto", "auto, cuda, cuda:N, mps or cpu", "Device")
    max_train_samples: int | None = option(None, "train on a random subset of this many faces",
                                           "Training samples", lo=1, step=500, placeholder="all")
    val_split: str = option("public_test", "split scored every epoch (and best.pt chosen on): holdout (a fixed tenth "
                            "of Training, then left out of training: honest selection), public_test or private_test "
                            "(FER2013's), or the source's own val or test ('val' is read from test, with a warning, "
                            "where a source has no val split)", "Validate on",
                            choices=tuple(s for s in SPLIT_NAMES if s != "train"))
    momentum: float = option(0.9, "SGD momentum (Nesterov, so above 0)", "SGD momentum", section="advanced",
                             lo=0.01, hi=0.999, step=0.01)
    checkpoint_every: int = option(1, "epochs between last.pt saves (a long GPU run saves less often)",
                                   "Checkpoint every (epochs)", section="advanced", lo=1, step=1)
    eval_batch_size: int = option(1024, "batch size of the validation pass", "Evaluation batch size",
                                  section="advanced", lo=1, step=256)
    channels_last: bool = option(True, "channels-last memory format (faster convolutions on GPUs)",
                                 "Channels last", section="advanced")
    amp: bool = option(True, "bf16 autocast on CUDA", "Mixed precision (CUDA)", section="advanced")
    cpu_fast: bool = option(False, "on a CPU: channels-last, and bf16 autocast where the CPU computes bf16 natively "
                            "(AVX512-BF16 or AMX); fp32 elsewhere", "CPU speed-ups", section="advanced")

    def validate(self) -> None:
        """Every field against its metadata, then the rules that tie fields together; a bad value raises a
        one-line ValueError naming its flag."""
        for o in options():
            check_value(o, getattr(self, o.name))
        if not self.data:
            raise ValueError("--data is required")
        if self.warmup_epochs > self.epochs:
            raise ValueError("--warmup-epochs must be between 0 and --epochs")
        if self.low_res and self.low_res < 16:
            raise ValueError("--low-res must be 0 (off) or 16-47 pixels")
        if self.low_res_epochs > self.epochs:
            raise ValueError("--low-res-epochs must be between 0 and --epochs")
        if self.low_res and not self.low_res_epochs:
            raise ValueError("--low-res needs --low-res-epochs (the epochs over which the side grows to 48)")
        if self.device not in DEVICES and not (self.device.startswith("cuda:") and self.device[5:].isdigit()):
            raise ValueError(f"--device must be auto, cuda, cuda:N, mps or cpu, got {self.device!r}")
        check_model_args(self.model, self.model_args)
        for p in self.teacher_paths():
            if not Path(p).is_file():
                raise ValueError(f"--teacher: no checkpoint file {p!r}")

    def teacher_paths(self) -> list[str]:
        """--teacher 'a.pt, b.pt' -> ['a.pt', 'b.pt'] (empty: no distillation)."""
        return [p.strip() for p in self.teacher.split(",") if p.strip()]

    def train_size(self, epoch: int) -> int:
        """Side in pixels of the training faces in epoch `epoch` (0-based): --low-res growing linearly to 48."""
        if not self.low_res or epoch >= self.low_res_epochs:
            return 48
        return round(self.low_res + (48 - self.low_res) * epoch / self.low_res_epochs)

    def epoch_costs(self) -> list[float]:
        """Each epoch's training cost in 48-pixel epochs: an epoch at side s costs (s/48)^2 of one (measured on
        2 CPU cores: 32 px trains 2.2x faster than 48, 24 px 3.7x)."""
        return [(self.train_size(e) / 48) ** 2 for e in range(self.epochs)]

    def epoch_cost(self) -> float:
        """The whole run's training in 48-pixel epochs."""
        return sum(self.epoch_costs())

    def augment_config(self) -> AugmentConfig:
        return AugmentConfig(self.rotation, self.zoom, self.shift, self.flip, self.erase, self.photometric)


@dataclass(frozen=True)
class Option:
    """One TrainConfig field as the command line and the form see it."""

    name: str
    kind: str  # "int", "float", "bool", "str" or "json" (a dict, given as JSON text)
    default: object
    help: str
    label: str
    section: str
    lo: float | None
    hi: float | None
    step: float | None
    choices: tuple | None
    fmt: str | None
    placeholder: str | None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def optional(self) -> bool:
        return self.placeholder is not None


@cache
def options() -> tuple[Option, ...]:
    hints = typing.get_type_hints(TrainConfig)
    out = []
    for f in fields(TrainConfig):
        base = next(t for t in typing.get_args(hints[f.name]) or (hints[f.name],) if t is not type(None))
        kind = "json" if base is dict else base.__name__
        default = f.default_factory() if callable(f.default_factory) else f.default
        out.append(Option(f.name, kind, default, **f.metadata))
    return tuple(out)


def check_value(o: Option, v) -> None:
    if v is None:
        if o.optional:
            return
        raise ValueError(f"{o.flag} is required")
    ok = {"int": isinstance(v, int) and not isinstance(v, bool),
          "float": isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
          "bool": isinstance(v, bool), "str": isinstance(v, str), "json": isinstance(v, dict)}[o.kind]
    if not ok:
        what = {"int": "an integer", "float": "a finite number", "bool": "true or false", "str": "a string",
                "json": "a JSON object"}[o.kind]
        raise ValueError(f"{o.flag} must be {what}, got {v!r}")
    if o.choices is not None and v not in o.choices:
        raise ValueError(f"{o.flag} must be one of {', '.join(o.choices)}, got {v!r}")
    if (o.lo is not None and v < o.lo) or (o.hi is not None and v > o.hi):
        rule = f"between {o.lo:g} and {o.hi:g}" if o.hi is not None else f"at least {o.lo:g}"
        raise ValueError(f"{o.flag} must be {rule}, got {v}")


def check_model_args(model: str, model_args) -> None:
    """Build the model once on a face-sized input: bad --model-args fail here, not in a half-made run
    (a model with the wrong number of outputs would leave a last.pt that nothing can use)."""
    if not isinstance(model_args, dict):
        raise ValueError(f"--model-args must be a JSON object, got {model_args!r}")
    try:
        with torch.no_grad():
            out = create_model(model, **model_args).eval()(torch.zeros(1, 1, 48, 48))  # (1, classes)
    except (TypeError, ValueError, RuntimeError) as e:
        msg = " ".join(str(e).split())[:300]
        raise ValueError(f"--model-args {json.dumps(model_args)} do not fit model {model!r}: {msg}") from None
    if tuple(out.shape) != (1, len(CLASSES)):
        raise ValueError(f"--model-args {json.dumps(model_args)}: model {model!r} would have {out.shape[-1]} "
                         f"outputs, FER2013 has {len(CLASSES)} classes")


def parse_json_object(o: Option, text: str) -> dict:
    try:
        v = json.loads(text or "{}")
    except ValueError:
        v = None
    if not isinstance(v, dict):
        raise ValueError(f'{o.flag} must be a JSON object such as {{"width": 8}}, got {text!r}')
    return v


def config_from_dict(values: dict) -> TrainConfig:
    """A TrainConfig from some of its fields (the rest default); unknown keys are an error. Not validated."""
    unknown = sorted(set(values) - {o.name for o in options()})
    if unknown:
        raise ValueError(f"unknown training option(s): {', '.join(unknown)}")
    return TrainConfig(**values)


def save_config(cfg: TrainConfig, path) -> None:
    """The config file `--config` reads: the shape of a run's config.json, which carries more keys."""
    atomic_write_bytes(path, (json.dumps({"hyperparameters": asdict(cfg)}, indent=2) + "\n").encode())


def load_config(path) -> TrainConfig:
    """A config file: a run's config.json, one written by save_config, or a plain object of fields; "-" reads
    it from stdin (how fer_core.runs hands a launched trainer its config)."""
    try:
        obj = json.loads(sys.stdin.read() if str(path) == "-" else Path(path).read_text())
        hp = obj.get("hyperparameters", obj)
        if not isinstance(hp, dict):
            raise ValueError("not a JSON object of training options")
        return config_from_dict(hp)
    except OSError as e:
        raise ValueError(f"{path}: cannot read the config ({e.strerror})") from None
    except (ValueError, AttributeError, TypeError) as e:
        raise ValueError(f"{path}: unreadable run config ({e})") from None
