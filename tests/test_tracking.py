"""Face tracking (fer_core.tracking): IoU, the uncertain decision, smoothing per track and track ids."""
from __future__ import annotations

import numpy as np
import pytest

from fer_core.tracking import UNCERTAIN, Smoother, decide, iou


def test_iou_known_answers():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == pytest.approx(1.0)
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0


def test_decide_and_uncertain():
    assert decide([0.1, 0, 0, 0.6, 0.3, 0, 0], 0.5) == ("happy", 0.6)
    assert decide([0.1, 0, 0, 0.4, 0.3, 0.2, 0], 0.5)[0] == UNCERTAIN


def test_smoother_averages_per_face_and_tracks_by_position():
    s = Smoother(alpha=0.5, threshold=0.6)
    happy, sad = np.eye(7)[3], np.eye(7)[4]
    a, b = (10, 10, 50, 50), (300, 10, 50, 50)
    out = s.update([a, b], [happy, sad])
    assert [o["label"] for o in out] == ["happy", "sad"]
    # next frame: faces listed in the other order and moved a little; each keeps its own history
    out = s.update([(305, 12, 50, 50), (12, 11, 50, 50)], [happy, happy])
    assert np.allclose(out[0]["probabilities"], 0.5 * sad + 0.5 * happy)
    assert out[0]["label"] == UNCERTAIN and out[0]["confidence"] == pytest.approx(0.5) and out[0]["frames"] == 2
    assert out[1]["label"] == "happy" and np.allclose(out[1]["probabilities"], happy)
    out = s.update([(305, 12, 50, 50)], [happy])
    assert out[0]["label"] == "happy" and out[0]["confidence"] == pytest.approx(0.75)
    # a face that vanishes is kept for a few frames, then forgotten
    for _ in range(5):
        s.update([], [])
    assert s.tracks == []
    out = s.update([(300, 10, 50, 50)], [sad])
    assert out[0]["frames"] == 1 and out[0]["label"] == "sad"
    with pytest.raises(ValueError):
        Smoother(alpha=0)



def test_track_ids_follow_faces_and_are_never_reused():
    s = Smoother(alpha=0.5, threshold=0.0, max_missing=2)
    happy, sad = np.eye(7)[3], np.eye(7)[4]
    a, b = (10, 10, 50, 50), (300, 10, 50, 50)
    assert [o["track"] for o in s.update([a, b], [happy, sad])] == [0, 1]
    # listed the other way round and moved a little: each face keeps its id
    assert [o["track"] for o in s.update([(304, 12, 50, 50), (12, 11, 50, 50)], [sad, happy])] == [1, 0]
    # a third face is new; face 0 gone for long enough is forgotten and comes back with a fresh id
    assert [o["track"] for o in s.update([(304, 12, 50, 50), (150, 200, 50, 50)], [sad, happy])] == [1, 2]
    s.update([(304, 12, 50, 50)], [sad])
    assert [o["track"] for o in s.update([a, (304, 12, 50, 50)], [happy, sad])] == [3, 1]
