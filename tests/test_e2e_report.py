"""Issue 25 in a real browser: the course report for the shipped seed_vgg.pt on the bundled sample, written by
`python -m fer_core.report` with the runs that trained it and its ablations (checkpoints/runs), opened in
Chromium from the file alone: every section, no broken image, the Keras total 3,257,799, the accuracy that
`python -m fer_core.evaluate` prints, Table 1's rows, and a print layout without the navigation."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from e2e_support import ARGS, CHROMIUM, ROOT, require_browser  # noqa: E402

pytestmark = pytest.mark.e2e
sync_api = require_browser()

CKPT, DATA = "checkpoints/seed_vgg.pt", "samples/fer2013_sample.npz"
RUNS = ["checkpoints/runs/gpu2/seed_vgg", "checkpoints/runs/gpu1/seed_vgg", "checkpoints/runs/gpu1/seed_vgg_noaug",
        "checkpoints/runs/gpu1/seed_vgg_nonorm"]
SECTIONS = {"architecture": "1. Architecture", "training": "2. Training", "ablations": "3. Ablations",
            "confusion": "4. Confusion matrix", "saliency": "5. Saliency maps", "filters": "6. Filters"}


def cli(*args) -> str:
    done = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_report_of_seed_vgg_opens_in_chromium_with_every_section(tmp_path):
    out = tmp_path / "report.html"
    cli("fer_core.report", "--checkpoint", CKPT, "--data", DATA, *[a for r in RUNS for a in ("--run", r)],
        "--out", str(out))
    accuracy = re.search(r"^accuracy (\d\.\d{4})", cli("fer_core.evaluate", "--checkpoint", CKPT, "--data", DATA),
                         re.M).group(1)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            requests = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(out.as_uri())
            page.wait_for_load_state("load")
            for sid, title in SECTIONS.items():
                heading = page.locator(f"section#{sid} > h2")
                assert heading.is_visible() and heading.inner_text().startswith(title)
            # every image decoded (a broken data: URL has naturalWidth 0), and nothing fetched but the file
            sizes = page.evaluate("[...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
            assert len(sizes) >= 20 and all(c and w > 0 and h > 0 for c, w, h in sizes), sizes
            assert all(u.startswith(("file:", "data:")) for u in requests), requests
            arch = page.locator("section#architecture")
            total = arch.locator("tr", has_text="Total params").inner_text()
            assert "3,257,799" in total and "3,257,799 parameters" in arch.inner_text()
            assert "the same" in arch.inner_text()
            conf = page.locator("section#confusion").inner_text()
            assert f"Accuracy {accuracy} on 656 faces" in conf  # what fer_core.evaluate prints
            assert "The course report read disgust as angry and fear as sad" in conf
            # Table 1 from the ablation runs of the model card (checkpoints/README.md), beside the report's
            rows = page.locator("section#ablations tbody tr").all_inner_texts()
            assert len(rows) == 2 and "0.5977 (seed_vgg_nonorm)" in rows[0] and "0.5968 (seed_vgg)" in rows[0]
            assert "0.5860 (seed_vgg_noaug)" in rows[1] and "0.55 -> 0.65" in rows[1]
            assert "Run seed_vgg (completed, 157 of 157 epochs" in page.locator("section#training").inner_text()
            assert page.locator("section#saliency .row").count() == 5
            # printing: no navigation, every section still there
            page.emulate_media(media="print")
            assert not page.locator("nav").is_visible() and page.locator("section#filters img").first.is_visible()
            assert page.pdf()[:4] == b"%PDF"
        finally:
            browser.close()
