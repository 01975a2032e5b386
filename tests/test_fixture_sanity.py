import json


def test_tiny_checkpoint_learns(tiny_checkpoint):
    metrics = [json.loads(line) for line in (tiny_checkpoint.parent / "metrics.jsonl").read_text().splitlines()]
    assert max(m["val_acc"] for m in metrics) > 0.6  # chance is 1/7
