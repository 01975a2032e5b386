"""Issue 24, class 7, in a real browser: run names made of Markdown and an image link are shown as the literal
text in the runs picker, the run panel and the runs table, and the browser fetches nothing from the address the
image link names (before: every viewer's browser fetched it)."""
from __future__ import annotations

import http.server
import json
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from e2e_support import ARGS, CHROMIUM, dashboard_server, free_port, require_browser  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # the AppTest of the same names runs by default
sync_api = require_browser()


class Recorder(http.server.BaseHTTPRequestHandler):
    hits: list = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        Recorder.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()

    def log_message(self, *a):
        pass


def fake_run(root: Path, name: str) -> None:
    run = root / name
    run.mkdir(parents=True)
    (run / "status.json").write_text(json.dumps({"state": "completed", "epoch": 1, "epochs": 1}))
    (run / "config.json").write_text(json.dumps({"hyperparameters": {"model": "mini_cnn", "epochs": 1},
                                                 "model_name": "mini_cnn", "model_args": {}}))
    (run / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "train_loss": 1.0, "train_acc": 0.5,
                                                   "val_loss": 1.0, "val_acc": 0.5}) + "\n")


def test_hostile_run_names_are_text_and_fetch_nothing(tmp_path):
    port = free_port()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Recorder)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    runs = tmp_path / "runs"
    image_name = f"![t](http:127.0.0.1:{port})"
    names = ["**bold**", ":red[alarm]", image_name]
    for n in names:
        fake_run(runs, n)
    try:
        with dashboard_server(tmp_path / "streamlit.log", FER_RUNS_DIR=str(runs),
                              FER_SETTINGS_FILE=str(tmp_path / "settings.json")) as url, \
                sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.set_default_timeout(60_000)
            page.goto(url + "/train")
            page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]')
            page.get_by_text("Run", exact=True).first.wait_for()
            page.wait_for_timeout(3000)  # images in Markdown would have loaded by now
            text = page.locator('[data-testid="stMain"]').inner_text()
            # the selected run (the newest: any of the three) is named as typed in the panel heading
            assert any(n in text for n in names), text[:3000]
            assert page.locator('[data-testid="stMain"] strong:text-is("bold")').count() == 0
            assert page.locator('[data-testid="stMain"] img[src*="127.0.0.1"]').count() == 0
            for n in names:  # choose each in the picker: its panel names it as typed
                picker = page.get_by_role("combobox", name="Run", exact=True)
                picker.click()
                picker.fill(n)  # the combobox filters its options by the text typed
                page.keyboard.press("Enter")
                page.wait_for_timeout(500)
                assert picker.input_value().startswith(n + " ("), picker.input_value()  # the picker: plain text
                page.wait_for_timeout(1500)
                page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]')
                assert n in page.locator('[data-testid="stMain"]').inner_text(), n
                assert page.locator('[data-testid="stMain"] img[src*="127.0.0.1"]').count() == 0
            browser.close()
    finally:
        httpd.shutdown()
    assert Recorder.hits == [], f"the browser fetched {Recorder.hits} from the address in a run name"
