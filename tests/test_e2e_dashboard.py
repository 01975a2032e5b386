"""End to end in a real browser: `streamlit run dashboard.py` on a free port, driven by Debian's chromium through
playwright. Visits every page of the navigation (no exception block allowed), launches a quick training run from
the Train page and watches it complete, and saves a screenshot of each page to docs/screenshots/<page>.png.

Needs /usr/bin/chromium (`apt-get install chromium`) and `pip install playwright`; skipped without them.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from e2e_support import ARGS, CHROMIUM, ROOT, act, app_tracebacks, dashboard_server, require_browser, settle  # noqa: E402

# README screenshots are refreshed with FER_SCREENSHOTS=docs/screenshots; by default they go to a temp dir
# so a test run leaves the tracked tree alone.
SHOTS = ROOT / (os.environ.get("FER_SCREENSHOTS") or tempfile.mkdtemp(prefix="fer-shots-"))

pytestmark = pytest.mark.e2e
sync_api = require_browser()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    runs_dir = tmp_path_factory.mktemp("e2e-runs")
    log = tmp_path_factory.mktemp("e2e-log") / "streamlit.log"
    settings = tmp_path_factory.mktemp("e2e-settings") / "settings.json"  # a first-time user: nothing remembered
    with dashboard_server(log, FER_RUNS_DIR=str(runs_dir), FER_SETTINGS_FILE=str(settings)) as url:
        yield {"url": url, "runs": runs_dir, "log": log}


@pytest.fixture(scope="module")
def page(server):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=ARGS)
        pg = browser.new_page(viewport={"width": 1440, "height": 1000})
        pg.set_default_timeout(60_000)
        yield pg
        browser.close()


def assert_no_exception(page, name):
    exc = page.locator('[data-testid="stException"]')
    assert exc.count() == 0, f"{name}: exception on the page:\n{exc.first.inner_text()[:2000]}"


def shot(page, name):
    """The whole page: Streamlit scrolls inside its main container, so the viewport is made as tall as it."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    height = page.evaluate('() => document.querySelector(\'[data-testid="stMain"]\')?.scrollHeight || 0')
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], min(int(height), 5000))})
    page.wait_for_timeout(1500)  # charts re-layout to the new size
    page.screenshot(path=str(SHOTS / f"{name}.png"))
    page.set_viewport_size(size)


def slug(href: str) -> str:
    return href.rstrip("/").rsplit("/", 1)[-1] or "home"


def test_every_page_renders_and_a_quick_run_completes(server, page):
    # a fresh server and session opened on a page URL (a bookmark, a refresh) must still get dashboard.py's
    # navigation, not Streamlit's automatic one over the files in a folder (views/ is not named pages/ for that reason)
    page.goto(server["url"] + "/train")
    settle(page)
    page.wait_for_selector("h1")
    nav = page.locator('[data-testid="stSidebarNav"] a[data-testid="stSidebarNavLink"]')
    links = [(nav.nth(i).inner_text().strip().splitlines()[-1].strip(), nav.nth(i).get_attribute("href"))
             for i in range(nav.count())]  # the text is "<icon name>\n\n<title>"
    titles = [t for t, _ in links]
    assert titles[:2] == ["Home", "Train"], titles
    expected = ["Home", "Train", "Confusion Matrix", "Saliency", "Filters", "Embeddings", "Compare", "Data Audit",
                "Classify", "Video"]
    assert titles == expected

    for title, href in links:
        t0 = time.time()
        name = "home" if title == "Home" else slug(href)
        act(page, nav.and_(page.locator(f'[href="{href}"]')).click)
        assert_no_exception(page, title)
        if title == "Train":
            run_quick(page)
            assert_no_exception(page, title)
        if title == "Home":
            assert_not_cut_off(page)
        if name != "video":  # test_e2e_video.py shoots it with a clip loaded
            shot(page, name)
        print(f"{title}: {time.time() - t0:.1f}s")

    assert [p.name for p in server["runs"].iterdir()] == ["e2e-quick"]
    # the run directory is the source of truth: a reload (new session) still shows the finished run
    page.goto(server["url"] + "/train")
    settle(page)
    page.get_by_text("epoch 2/2").first.wait_for()  # the live view of the (newest) run
    page.get_by_text("completed", exact=True).first.wait_for()
    assert_no_exception(page, "Train after reload")
    assert not app_tracebacks(server["log"].read_text())


def assert_not_cut_off(page):
    """Every metric value is shown whole (no "seed_..." ellipsis): its text fits its box."""
    page.wait_for_function('() => document.querySelectorAll(\'[data-testid="stMetricValue"]\').length >= 4')
    cut = page.evaluate("""() => [...document.querySelectorAll('[data-testid="stMetricValue"], '
        + '[data-testid="stMetricValue"] *')].filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.innerText)""")
    assert not cut, f"metric values cut off: {cut}"


def test_a_link_restores_the_view_and_the_cell_survives_a_visit_to_saliency(server, page):
    """The Confusion Matrix view in the URL: opened from a link, kept after Explain -> Saliency -> back."""
    page.goto(server["url"] + "/confusion_matrix?values=recall&cell=happy-happy")
    settle(page)
    assert_no_exception(page, "Confusion Matrix from a link")
    page.get_by_text("True happy, predicted happy").first.wait_for()
    assert "cell=happy-happy" in page.url and "values=recall" in page.url
    act(page, page.get_by_role("button", name="Explain").first.click)
    page.wait_for_url("**/saliency?**")
    assert "pick=sent" in page.url and "face=" in page.url
    page.get_by_text("Sent from the confusion cell happy → happy").wait_for()
    assert_no_exception(page, "Saliency")
    act(page, page.locator('[data-testid="stSidebarNav"] a[href$="/confusion_matrix"]').click)
    page.get_by_text("True happy, predicted happy").first.wait_for()
    assert "cell=happy-happy" in page.url
    assert_no_exception(page, "Confusion Matrix after Saliency")


def run_quick(page):
    """The quick check on its default data, the bundled sample's train split (no data outside the checkout)."""
    page.get_by_role("button", name="quick check", exact=True).click()
    settle(page)
    form = page.locator('[data-testid="stForm"]')
    assert form.get_by_label("Data source", exact=True).input_value().endswith("samples/fer2013_sample.npz")
    for label, value in (("Model arguments (JSON)", '{"width": 8}'), ("Epochs", "2"), ("Batch size", "32"),
                         ("Training samples", "200"), ("Run name", "e2e-quick")):
        field = form.get_by_label(label, exact=True)
        field.fill(value)
        field.press("Tab")
    form.get_by_role("button", name="Launch run").click()
    page.get_by_text("Launched e2e-quick").wait_for()
    page.get_by_text("completed", exact=True).first.wait_for(timeout=150_000)  # the live view's state badge
    settle(page)
    page.get_by_text("epoch 2/2").first.wait_for()
