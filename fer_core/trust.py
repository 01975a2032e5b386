"""Two trust signals for a saliency map (fer_core.saliency), no Streamlit: (a) deletion / insertion against random
pixel orders, (b) the model-randomization sanity check (Adebayo et al., 2018); trust() gives both."""
from __future__ import annotations

import hashlib

import numpy as np
import torch

from .models import create_model
from .saliency import saliency

# A map that passes the randomization check should change when the weights are randomized; above this
# Spearman correlation it looks the same for a random net, so it reflects the input, not the model.
SANITY_MAX_RHO = 0.5


def _device(model) -> torch.device:
    return next(model.parameters()).device


# ----------------------------------------------------------------------------------------------
# Trust signal (a): deletion / insertion against random pixel order


def _auc(y: np.ndarray) -> np.ndarray:
    """Area under curves sampled on an even grid of fractions 0..1; y: (..., S+1) -> (...)."""
    return ((y[..., 1:] + y[..., :-1]) / 2).mean(-1)


def _probs_when_masked(model, x, orders, counts, target: int) -> np.ndarray:
    """p(target) with the first counts[s] pixels of each order removed (deletion) or alone kept
    (insertion); x: (48, 48) normalized -> (2, O, S+1)."""
    n_pix = x.numel()
    rank = torch.empty((len(orders), n_pix), dtype=torch.long)
    for o, order in enumerate(orders):
        rank[o, torch.from_numpy(order)] = torch.arange(n_pix)
    # masks[o, s, p]: pixel p is among the first counts[s] pixels of order o
    masks = (rank[:, None, :] < torch.from_numpy(counts)[None, :, None]).to(x.device)  # (O, S+1, 2304)
    flat = x.reshape(-1)
    deleted = torch.where(masks, torch.zeros_like(flat), flat)  # removed pixels -> training mean (0)
    inserted = torch.where(masks, flat, torch.zeros_like(flat))
    batch = torch.cat([deleted, inserted]).reshape(-1, 1, *x.shape)  # (2*O*(S+1), 1, 48, 48)
    probs = torch.cat([torch.softmax(model(b), 1)[:, target] for b in batch.split(128)]).cpu().numpy()
    return probs.reshape(2, len(orders), len(counts))


@torch.no_grad()
def deletion_insertion(model, prep, face, target: int, smap, steps: int = 16, n_random: int = 2,
                       seed: int = 0) -> dict:
    """How fast p(target) falls when the most salient pixels are removed (deletion, lower AUC is better) and
    how fast it rises when only they are shown on the training-mean image (insertion, higher is better), each
    compared with the same curve for random pixel orders. gain > 0: the map ranks pixels better than chance.

    Returns deletion_auc, deletion_random_auc, insertion_auc, insertion_random_auc, deletion_gain,
    insertion_gain, score (mean of the two gains, in probability units -1..1), fractions and the curves.
    """
    face = np.array(face, dtype=np.uint8)
    x = prep(face[None]).to(_device(model))[0, 0]  # (48, 48) normalized
    n_pix = x.numel()
    rng = np.random.default_rng(seed)
    smap = np.asarray(smap, dtype=np.float64).ravel()
    fracs = np.linspace(0, 1, steps + 1)
    counts = np.round(fracs * n_pix).astype(int)
    # the random-order curves do not depend on the map: computed once per model, face and class
    store = model.__dict__.setdefault("_fer_random_curves", {})
    key = (hashlib.sha1(face.tobytes()).hexdigest(), id(prep), int(target), steps, n_random, seed)
    if key not in store:
        if len(store) > 256:
            store.clear()
        orders = [np.random.default_rng(seed + 1 + r).permutation(n_pix) for r in range(n_random)]
        store[key] = _probs_when_masked(model, x, orders, counts, target)  # (2, R, S+1)
    rand = store[key]
    # ties (flat Grad-CAM zeros) are broken at random, not in raster order
    probs = _probs_when_masked(model, x, [np.lexsort((rng.random(n_pix), -smap))], counts, target)[:, 0]  # (2, S+1)
    res = {
        "deletion_auc": float(_auc(probs[0])), "deletion_random_auc": float(_auc(rand[0]).mean()),
        "insertion_auc": float(_auc(probs[1])), "insertion_random_auc": float(_auc(rand[1]).mean()),
        "fractions": fracs, "deletion_curve": probs[0], "insertion_curve": probs[1],
        "deletion_random_curve": rand[0].mean(0), "insertion_random_curve": rand[1].mean(0),
    }
    res["deletion_gain"] = res["deletion_random_auc"] - res["deletion_auc"]
    res["insertion_gain"] = res["insertion_auc"] - res["insertion_random_auc"]
    res["score"] = (res["deletion_gain"] + res["insertion_gain"]) / 2
    return res


# ----------------------------------------------------------------------------------------------
# Trust signal (b): model-randomization sanity check (Adebayo et al., 2018)

_RANDOM_MODELS: dict = {}


def randomized_model(model, seed: int = 0):
    """The same architecture with freshly initialized weights (cached per architecture and seed)."""
    name = getattr(model, "model_name", "")
    if not name:
        raise ValueError("model randomization needs a model built by fer_core.models.create_model")
    args = dict(getattr(model, "model_args", {}))
    key = (name, repr(sorted(args.items())), seed, str(_device(model)))
    if key not in _RANDOM_MODELS:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            rnd = create_model(name, **args)
        _RANDOM_MODELS[key] = rnd.to(_device(model)).eval()
    return _RANDOM_MODELS[key]


def spearman(a, b) -> float:
    """Spearman rank correlation of two maps (flattened); 0 for a constant map."""
    from scipy.stats import rankdata

    ra, rb = rankdata(np.ravel(a)), rankdata(np.ravel(b))
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def randomization_check(model, prep, face, target: int, method="vanilla", smap=None, seed: int = 0,
                        **opts) -> dict:
    """Rank correlation between the map of the trained model and that of a randomized copy. A map that
    explains the model should change when the weights are destroyed: passed = rho < SANITY_MAX_RHO.
    method: a METHODS name, or a callable (model, prep, face, target) -> map for other explainers."""
    def explain(m):
        if callable(method):
            return np.asarray(method(m, prep, face, target), np.float32)
        return saliency(m, prep, face, target, method, **opts)

    if smap is None:
        smap = explain(model)
    rmap = explain(randomized_model(model, seed))
    rho = spearman(smap, rmap)
    return {"spearman": rho, "passed": bool(rho < SANITY_MAX_RHO), "random_map": rmap}


def trust(model, prep, face, target: int, method: str, smap=None, **opts) -> dict:
    """Both trust signals for one map: deletion/insertion and the randomization check."""
    if smap is None:
        smap = saliency(model, prep, face, target, method, **opts)
    di = deletion_insertion(model, prep, face, target, smap)
    rc = randomization_check(model, prep, face, target, method, smap=smap, **opts)
    return {**di, "sanity_spearman": rc["spearman"], "sanity_passed": rc["passed"], "random_map": rc["random_map"]}
