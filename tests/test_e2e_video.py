"""The Video page in a real browser: `streamlit run dashboard.py`, headless Debian chromium via playwright, a
two-face clip uploaded through the page's file input; the timeline appears and clicking one of its points
shows that frame. Saves docs/screenshots/video.png when FER_SCREENSHOTS is set (as test_e2e_dashboard does).

Needs /usr/bin/chromium (`apt-get install chromium`) and playwright; skipped without them.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from e2e_support import ARGS, CHROMIUM, app_tracebacks, ROOT, dashboard_server, require_browser, settle  # noqa: E402
from test_video import make_clip  # noqa: E402

SHOTS = ROOT / (os.environ.get("FER_SCREENSHOTS") or tempfile.mkdtemp(prefix="fer-shots-"))

pytestmark = pytest.mark.e2e
sync_api = require_browser()


def test_upload_a_clip_and_click_the_timeline(tmp_path):
    clip = make_clip(tmp_path / "two faces.mp4", n=20, fps=10)  # 2 s, two faces moving
    log = tmp_path / "streamlit.log"
    with dashboard_server(log) as url, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            page.set_default_timeout(120_000)
            page.goto(url + "/video")
            settle(page)
            page.get_by_role("heading", name="Video").first.wait_for()
            page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(clip))
            page.get_by_role("heading", name="Timeline").first.wait_for()
            settle(page)
            assert page.locator('[data-testid="stException"]').count() == 0
            assert page.get_by_text("10 frames analysed, 2 track(s)").count() == 1
            assert page.get_by_text("track 1", exact=True).count() >= 1  # the track picker
            page.get_by_text("frame at 0.00 s").first.wait_for()
            # click the timeline's last 'happy' marker of track 0 -> that frame (1.80 s) is shown
            points = page.locator('[data-testid="stPlotlyChart"]').first.locator(".scatterlayer .trace").nth(3) \
                .locator(".points path")
            assert points.count() == 10
            points.last.scroll_into_view_if_needed()
            box = points.last.bounding_box()  # plotly's drag layer sits on top: click where the marker is
            x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            page.mouse.move(x, y)
            page.wait_for_timeout(300)
            page.mouse.click(x, y)
            page.get_by_text("frame at 1.80 s").first.wait_for()
            settle(page)
            slider = page.locator('[data-testid="stSlider"]').filter(has_text="Frame at (s)")
            assert slider.locator('[data-testid="stSliderThumbValue"]').inner_text() == "1.80"  # follows the click
            assert page.locator('[data-testid="stException"]').count() == 0
            assert page.locator("video").count() == 1
            assert page.get_by_role("button", name="Download CSV").count() == 1
            # the whole page: Streamlit scrolls inside its main container, so the viewport is made as tall as it
            SHOTS.mkdir(parents=True, exist_ok=True)
            height = page.evaluate('() => document.querySelector(\'[data-testid="stMain"]\')?.scrollHeight || 0')
            page.set_viewport_size({"width": 1400, "height": max(1000, min(int(height), 5000))})
            page.wait_for_timeout(1500)
            page.screenshot(path=str(SHOTS / "video.png"))
        finally:
            browser.close()
    assert not app_tracebacks(log.read_text())
