"""Which face to explain, and for which classes: the Saliency page's choices as plain functions over a
split's Predictions (no Streamlit), so the page only lays out widgets."""
from __future__ import annotations

import numpy as np

from .interpret import Predictions, cell_samples, confusion, most_confused
from .regions import region_masks, region_shares

MAX_LISTED = 500  # a picker lists at most this many faces


def sent_face(sent: dict | None, data: str, split: str, view: str, n_faces: int) -> dict | None:
    """A face sent from the Confusion Matrix or a link ({"data", "split", "index", "view"?, ...}) if it still
    belongs to what the page shows (same data, split and view, index in range), else None. A face sent without
    a view belongs to the current one."""
    if not sent:
        return None
    try:
        index = int(sent["index"])
    except (KeyError, TypeError, ValueError):
        return None
    sent = {**sent, "view": sent.get("view", view), "index": index}
    if (sent.get("data"), sent.get("split")) != (data, split) or sent["view"] != view or not 0 <= index < n_faces:
        return None
    return sent


def of_class(preds: Predictions, k: int) -> np.ndarray:
    """Faces whose true class is k, in split order."""
    return np.flatnonzero(preds.true == k)


def of_cell(preds: Predictions, true: int, pred: int) -> np.ndarray:
    """Faces of class `true` predicted as `pred`, most confident first."""
    return cell_samples(preds, true, pred)


def of_outcome(preds: Predictions, correct: bool) -> np.ndarray:
    """Correctly (or wrongly) predicted faces, most confident prediction first."""
    cand = np.flatnonzero((preds.pred == preds.true) == correct)
    return cand[np.argsort(-preds.confidence[cand], kind="stable")]


def random_face(n_faces: int, seed: int) -> int:
    return int(np.random.default_rng(seed).integers(n_faces))


def most_confused_pair(preds: Predictions) -> tuple[int, int]:
    """(true, predicted) class of the confusion matrix's largest off-diagonal cell; (0, 0) when there is none."""
    top = most_confused(confusion(preds.true, preds.pred)[0], k=1)
    return (top[0]["true"], top[0]["pred"]) if top else (0, 0)


def targets(pred: int, true: int | None, chosen: int | None = None) -> list[int]:
    """Classes to explain: the chosen one; else the predicted class, and the true one when it differs."""
    if chosen is not None:
        return [chosen]
    return [pred] + ([true] if true is not None and true != pred else [])


def region_caption(smap) -> str:
    """'eyes/brows 41% · nose 12% · mouth 30% · other 17%': the map's share of saliency per face region."""
    return " · ".join(f"{r.replace('_', '/')} {v:.0%}" for r, v in zip(region_masks(), region_shares(smap)))
