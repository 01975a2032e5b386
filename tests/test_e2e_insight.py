"""The Embeddings, Compare and Data Audit pages in a real browser (`streamlit run dashboard.py`, headless Debian
chromium via playwright), on the shipped checkpoints and the bundled sample: clicking a point of the embedding map
shows that face and "Open in Saliency" explains it there; a lasso lists the faces inside it; a disagreement's
"Explain" on the Compare page opens that face in Saliency. Screenshots go where test_e2e_dashboard.py puts them.

Needs /usr/bin/chromium (`apt-get install chromium`) and playwright; skipped without them.
"""
from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from e2e_support import ARGS, CHROMIUM, ROOT, app_tracebacks, dashboard_server, require_browser, settle  # noqa: E402

SHOTS = ROOT / (os.environ.get("FER_SCREENSHOTS") or tempfile.mkdtemp(prefix="fer-shots-"))

pytestmark = pytest.mark.e2e
sync_api = require_browser()

# every marker of the map: its trace (class), the face it stands for (customdata, bound by plotly as d.data) and
# its centre on the screen
POINTS_JS = """() => [...document.querySelectorAll('[data-testid="stPlotlyChart"] .scatterlayer .trace')]
  .flatMap((tr, t) => [...tr.querySelectorAll('.points path')].map(p => {
    const b = p.getBoundingClientRect();
    return {trace: t, face: p.__data__.data, x: b.x + b.width / 2, y: b.y + b.height / 2};
  }))"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log = tmp_path_factory.mktemp("e2e-insight") / "streamlit.log"
    settings = tmp_path_factory.mktemp("e2e-insight-settings") / "settings.json"
    with dashboard_server(log, FER_SETTINGS_FILE=str(settings), FER_RUNS_DIR=str(log.parent / "runs")) as url:
        yield {"url": url, "log": log}


@pytest.fixture(scope="module")
def page(server):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        pg = browser.new_page(viewport={"width": 1440, "height": 1100})
        pg.set_default_timeout(180_000)
        yield pg
        browser.close()


def no_exception(page, where):
    exc = page.locator('[data-testid="stException"]')
    assert exc.count() == 0, f"{where}: {exc.first.inner_text()[:2000]}"


def shot(page, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    height = page.evaluate('() => document.querySelector(\'[data-testid="stMain"]\')?.scrollHeight || 0')
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], min(int(height), 5000))})
    page.wait_for_timeout(1500)
    page.screenshot(path=str(SHOTS / f"{name}.png"))
    page.set_viewport_size(size)


def loneliest(points):
    """The marker farthest from every other one: a click there can only hit it."""
    def gap(p):
        return min((p["x"] - q["x"]) ** 2 + (p["y"] - q["y"]) ** 2 for q in points if q is not p)
    return max(points, key=gap)


def test_click_a_point_then_open_it_in_saliency(server, page):
    page.goto(server["url"] + "/embeddings")
    settle(page)
    no_exception(page, "Embeddings")
    page.get_by_text("656 faces. PCA of the penultimate features").wait_for()
    chart = page.locator('[data-testid="stPlotlyChart"]').first
    chart.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    points = page.evaluate(POINTS_JS)
    assert len(points) == 656 and sorted(p["face"] for p in points) == list(range(656))
    target = loneliest(points)
    page.mouse.move(target["x"], target["y"])  # plotly's drag layer is on top: click where the marker is
    page.wait_for_timeout(300)
    page.mouse.click(target["x"], target["y"])
    settle(page)
    k = target["face"]
    page.get_by_text(re.compile(rf"^#{k} test/")).first.wait_for()  # the face's caption: its number and file
    assert page.get_by_role("spinbutton").first.input_value() == str(k)  # the picker follows the click
    assert f"face={k}" in page.url
    no_exception(page, "Embeddings after a click")
    shot(page, "embeddings")
    page.get_by_role("button", name="Open in Saliency").click()
    page.wait_for_url("**/saliency?**")
    settle(page)
    assert "pick=sent" in page.url and f"face={k}" in page.url
    page.get_by_text("Sent from the embedding map").wait_for()
    page.get_by_text(re.compile(rf"^#{k} · true ")).first.wait_for()
    no_exception(page, "Saliency from the embedding map")


def test_a_lasso_lists_the_faces_inside_it(server, page):
    page.goto(server["url"] + "/embeddings?colour=pred")
    settle(page)
    chart = page.locator('[data-testid="stPlotlyChart"]').first
    chart.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    points = page.evaluate(POINTS_JS)
    xs, ys = sorted(p["x"] for p in points), sorted(p["y"] for p in points)
    # a rectangle around the middle of the cloud, drawn with the toolbar's lasso
    chart.hover()
    chart.locator('.modebar-btn[data-title="Lasso Select"]').click()
    x0, x1, y0, y1 = xs[len(xs) // 3], xs[2 * len(xs) // 3], ys[len(ys) // 3], ys[2 * len(ys) // 3]
    page.mouse.move(x0, y0)
    page.mouse.down()
    for x, y in ((x1, y0), (x1, y1), (x0, y1), (x0, y0 + 1)):
        page.mouse.move(x, y, steps=8)
    page.mouse.up()
    settle(page)
    heading = page.get_by_role("heading", name=re.compile(r"faces selected")).first
    heading.wait_for()
    n = int(re.match(r"(\d+) faces selected", heading.inner_text()).group(1))
    inside = [p for p in points if x0 < p["x"] < x1 and y0 < p["y"] < y1]
    edge = [p for p in points if x0 - 4 < p["x"] < x1 + 4 and y0 - 4 < p["y"] < y1 + 4]
    assert len(inside) - 2 <= n <= len(edge) and n > 10  # markers on the lasso's edge may go either way
    no_exception(page, "Embeddings after a lasso")


def test_a_disagreement_opens_in_saliency(server, page):
    page.goto(server["url"] + "/compare")
    settle(page)
    no_exception(page, "Compare")
    page.get_by_text("McNemar mid-p").first.wait_for()
    heading = page.get_by_role("heading", name=re.compile(r"Faces they disagree on")).first
    heading.scroll_into_view_if_needed()
    caption = page.get_by_text(re.compile(r"^#\d+ · true \w+ · A ")).first.inner_text()  # the first face
    k = int(re.match(r"#(\d+) ", caption).group(1))
    shot(page, "compare")
    page.get_by_role("button", name="Explain", exact=True).first.click()
    page.wait_for_url("**/saliency?**")
    settle(page)
    assert "pick=sent" in page.url and f"face={k}" in page.url
    page.get_by_text("Sent from the Compare page (model A)").wait_for()
    page.get_by_text(re.compile(rf"^#{k} · true ")).first.wait_for()
    no_exception(page, "Saliency from Compare")


def test_the_audit_page(server, page):
    page.goto(server["url"] + "/audit")
    settle(page)
    no_exception(page, "Data Audit")
    page.get_by_text("pairs, closest first").first.wait_for()
    shot(page, "audit")
    download = page.locator('[data-testid="stDownloadButton"]').filter(has_text="Download the suspects (CSV)")
    with page.expect_download() as got:
        download.locator("button").click()
    csv = Path(got.value.path()).read_text().splitlines()
    assert csv[0] == "rank,split,index,id,label,suggested,p_label,p_suggested,margin" and len(csv) > 10
    assert not app_tracebacks(server["log"].read_text())
