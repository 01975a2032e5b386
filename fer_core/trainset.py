"""The faces a run trains and validates on: the train split less the holdout tenth when that is validated on,
the --max-train-samples subset, and the one-line refusal of a data set too small to train."""
from __future__ import annotations

import numpy as np

from .images import DataError
from .splits import HOLDOUT, holdout_mask


MIN_TRAIN_FACES = 8  # fewer cannot fit a normalization or a batch-norm statistic worth the name
MIN_VAL_FACES = 1  # an empty validation split gives 0/0 accuracy and a NaN loss every epoch


def training_faces(cfg, train_set):
    """The faces trained on: the train split less the holdout tenth when that is validated on, then the
    --max-train-samples subset."""
    if cfg.val_split == HOLDOUT:  # validated on a slice of Training: never train on it
        train_set = train_set.subset(np.flatnonzero(~holdout_mask(train_set.ids, train_set.y)))
    if cfg.max_train_samples and cfg.max_train_samples < len(train_set):
        pick = np.random.default_rng(cfg.seed).permutation(len(train_set))[: cfg.max_train_samples]
        train_set = train_set.subset(np.sort(pick))
    return train_set


def check_trainable(cfg, n_train: int, n_val: int) -> None:
    """Refuse, before a model is built, a data set too small to train and validate (DataError, one line)."""
    where = f"{cfg.data}: " if cfg.data else ""
    if n_train < MIN_TRAIN_FACES:
        raise DataError(f"{where}{n_train} training face{'s' * (n_train != 1)}"
                        + (" after the holdout tenth is set aside" if cfg.val_split == HOLDOUT else "")
                        + f"; at least {MIN_TRAIN_FACES} are needed to train")
    if n_val < MIN_VAL_FACES:
        raise DataError(f"{where}the holdout tenth of the train split is empty: no faces to validate on; give more "
                        "faces or another --val-split" if cfg.val_split == HOLDOUT else
                        f"{where}split '{cfg.val_split}' has no faces to validate on; give a source with one, "
                        "or --val-split holdout on a larger train split")
