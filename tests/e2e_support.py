"""Shared plumbing of the browser tests: `streamlit run dashboard.py` on a free port, Debian chromium flags."""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("FER_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]


def have_chromium() -> bool:
    return Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is not None


def require_browser():
    """playwright's sync API, or skip the calling test module when playwright or chromium is missing."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    if not have_chromium():
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)
    return sync_api


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def dashboard_server(log: Path, **env):
    """Run the dashboard headless with the file watcher off; yields its URL, stops the process group after."""
    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "dashboard.py", "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1", "--server.fileWatcherType", "none",
             "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1", **env), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        end = time.time() + 90
        while True:
            try:
                if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > end:
                pytest.fail(f"streamlit did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)


RUN_STATE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
# a MutationObserver on the app's script state, so a wait can tell "the run this click started is over" from "no
# run has started yet": a page switch on a busy machine (first imports of a page's modules) may take over a second
# to reach the server, and the state reads notRunning all that time
WATCH = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  window.__ferRan = false;
  if (window.__ferWatch) window.__ferWatch.disconnect();
  window.__ferWatch = new MutationObserver(() => {
    if (app.getAttribute('data-test-script-state') !== 'notRunning') window.__ferRan = true;
  });
  window.__ferWatch.observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
}"""


def settle(page, timeout=240):
    """Wait until the script run is over (checked twice: a rerun may follow the first)."""
    for _ in range(2):
        page.wait_for_selector(RUN_STATE, timeout=timeout * 1000)
        page.wait_for_timeout(800)


def act(page, action, timeout=240, start_within=20):
    """Do `action` (a click that reruns the script, such as a page link) and wait until the run it started is
    over. If no run is seen starting within `start_within` seconds (a click that reruns nothing), settle as is."""
    from playwright.sync_api import TimeoutError as NoRun  # playwright is imported only where a browser test runs

    page.evaluate(WATCH)
    action()
    try:
        page.wait_for_function("() => window.__ferRan === true", timeout=start_within * 1000)
    except NoRun:
        pass
    settle(page, timeout)


def app_tracebacks(log: str) -> list[str]:
    """The tracebacks in a dashboard server's log, less Streamlit's own websocket teardown noise: its starlette
    server logs WebSocketDisconnected ("Need to call accept first", "Cannot call send once a close message has
    been sent") when a browser closes mid-handshake, in no frame of ours. Anything else (a page error, an error in
    a video callback) stays, with its last line."""
    found, lines, i = [], log.splitlines(), 0
    while i < len(lines):
        if lines[i].startswith("Traceback (most recent call last):"):
            j = i + 1
            while j < len(lines) and (lines[j].startswith((" ", "\t")) or not lines[j].strip()):
                j += 1
            block = "\n".join(lines[i : j + 1])  # frames and the exception line
            ours = any(s in block for s in ("views/", "app_common.py", "fer_core/", "dashboard.py"))
            teardown = j < len(lines) and lines[j].startswith("starlette.websockets.WebSocketDisconnected")
            if ours or not teardown:
                found.append(block)
            i = j
        i += 1
    return found
