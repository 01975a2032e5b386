import json


def test_tiny_checkpoint_learns(tiny_checkpoint):
    metrics = [json.loads(line) for line in (tiny_checkpoint.parent / "metrics.jsonl").read_text().splitlines()]
    assert max(m["val_acc"] for m in metrics) > 0.6  # chance is 1/7


def test_app_tracebacks_drops_only_streamlits_websocket_teardown():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from e2e_support import app_tracebacks

    # the two blocks Streamlit's starlette server logged when chromium closed mid-handshake (CI, 2026-11-29)
    teardown = ("Exception in ASGI application\nTraceback (most recent call last):\n"
                '  File "/x/site-packages/streamlit/web/server/starlette/starlette_websocket.py", line 516, in e\n'
                "    data = await websocket.receive_bytes()\n"
                "starlette.websockets.WebSocketDisconnected: WebSocket is not connected. Need to call \"accept\" first.\n"
                "\nDuring handling of the above exception, another exception occurred:\n\n"
                "Traceback (most recent call last):\n"
                '  File "/x/site-packages/starlette/websockets.py", line 104, in send\n'
                "starlette.websockets.WebSocketDisconnected: Cannot call \"send\" once a close message has been sent.\n")
    assert app_tracebacks("  Local URL: http://localhost:8501\n" + teardown) == []
    ours = ("Traceback (most recent call last):\n"
            '  File "/repo/views/classify.py", line 120, in callback\n'
            "ValueError: bad frame\n")
    assert len(app_tracebacks(teardown + ours)) == 1 and "bad frame" in app_tracebacks(ours)[0]
    other = 'Traceback (most recent call last):\n  File "/x/site-packages/av/frame.py", line 3\nRuntimeError: x\n'
    assert app_tracebacks(other) != []  # not the known teardown: kept
    # the teardown exception raised through our code is ours
    mixed = ('Traceback (most recent call last):\n  File "/repo/app_common.py", line 9\n'
             "starlette.websockets.WebSocketDisconnected: x\n")
    assert app_tracebacks(mixed) != []
