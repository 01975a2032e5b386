"""fer_core.picks: the Saliency page's face and target choices, on hand-made predictions with known answers."""
import numpy as np

from fer_core import picks
from fer_core.interpret import Predictions


def _preds():
    # 6 faces, 3 classes used: true 0 0 1 1 2 2; predicted 0 1 1 0 2 1 with the confidences below
    true = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 0, 2, 1])
    conf = np.array([0.9, 0.6, 0.8, 0.7, 0.5, 0.95])
    probs = np.full((6, 7), 0.0, np.float32)
    for i, (p, c) in enumerate(zip(pred, conf)):
        probs[i] = (1 - c) / 6
        probs[i, p] = c
    return Predictions(probs, true)


def test_face_lists():
    p = _preds()
    assert picks.of_class(p, 1).tolist() == [2, 3]
    assert picks.of_cell(p, 2, 1).tolist() == [5] and picks.of_cell(p, 0, 2).tolist() == []
    assert picks.of_outcome(p, True).tolist() == [0, 2, 4]  # confidences 0.9, 0.8, 0.5
    assert picks.of_outcome(p, False).tolist() == [5, 3, 1]  # 0.95, 0.7, 0.6
    # three confused cells of one face each: the first in (true, pred) order wins the tie
    assert picks.most_confused_pair(p) == (0, 1)
    perfect = Predictions(np.eye(7, dtype=np.float32)[[0, 1]], np.array([0, 1]))
    assert picks.most_confused_pair(perfect) == (0, 0)
    assert picks.random_face(100, 7) == picks.random_face(100, 7) and 0 <= picks.random_face(3, 1) < 3


def test_sent_face_belongs_to_the_view_or_is_dropped():
    sent = {"data": "d.zip", "split": "test", "index": 4, "view": "v1", "origin": "Confusion Matrix"}
    assert picks.sent_face(sent, "d.zip", "test", "v1", 10) == sent
    assert picks.sent_face(sent, "d.zip", "test", "v2", 10) is None  # another checkpoint's view
    assert picks.sent_face(sent, "other.zip", "test", "v1", 10) is None
    assert picks.sent_face(sent, "d.zip", "val", "v1", 10) is None
    assert picks.sent_face(sent, "d.zip", "test", "v1", 4) is None  # index out of range
    assert picks.sent_face({**sent, "index": "x"}, "d.zip", "test", "v1", 10) is None
    assert picks.sent_face({**sent, "index": "4"}, "d.zip", "test", "v1", 10)["index"] == 4  # from a link
    no_view = {k: v for k, v in sent.items() if k != "view"}
    assert picks.sent_face(no_view, "d.zip", "test", "v9", 10)["view"] == "v9"
    assert picks.sent_face(None, "d.zip", "test", "v1", 10) is None


def test_targets_and_region_caption():
    assert picks.targets(3, 3) == [3] and picks.targets(3, 5) == [3, 5] and picks.targets(3, None) == [3]
    assert picks.targets(3, 5, chosen=1) == [1]
    smap = np.zeros((48, 48))
    smap[35, 20] = 1.0  # all saliency on one mouth pixel
    assert picks.region_caption(smap) == "eyes/brows 0% · nose 0% · mouth 100% · other 0%"
