"""The web page in a real headless Chromium (Debian's ``chromium``, driven by Playwright's Python API)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the service needs faceprint[server]")
sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright (dev extra)")

from faceprint.apikeys import KeyStore  # noqa: E402
from faceprint.match import DEFAULT_FPIR, operating_point  # noqa: E402
from faceprint.pipeline import DEFAULT_OPTIONS  # noqa: E402

from .conftest import KIT, MULTI, ROSE  # noqa: E402
from .service_server import running_server  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="no chromium: `apt-get install -y chromium` (.ci/run does it as root)"
    ),
]


def test_sign_in_enroll_recognize_verify_and_delete_in_the_page(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _, token = KeyStore(data).create("acme", ["read", "enroll", "recognize", "admin"])
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with running_server(data) as url, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1100, "height": 1600})
        page.set_default_timeout(60_000)
        page.goto(url + "/")
        page.fill("#key", "fpk_wrong_key")
        page.click("#signin")
        page.wait_for_selector("#signin-error:has-text('Invalid API key')")
        page.fill("#key", token)
        page.click("#signin")
        page.wait_for_selector("#who:has-text('tenant acme')")
        page.fill("#new-collection", "friends")
        page.check("#new-thumbnails")
        page.click("#create-collection")
        page.wait_for_selector("#collection-info:has-text('0 people')")
        page.screenshot(path=shots / "1-signed-in.png")

        for name, photos in (("Kit Harington", KIT[:1]), ("Rose Leslie", ROSE[:1])):
            page.fill("#enroll-name", name)
            page.set_input_files("#enroll-files", [str(p) for p in photos])
            page.click("#enroll")
            page.wait_for_selector(f"#people td.name:has-text('{name}')")
        assert page.inner_text("#enroll-result").startswith("Rose Leslie: 1 photo(s) added")
        page.wait_for_selector("#people tr:has-text('Rose Leslie') img.thumbnail")  # the collection opted in
        page.screenshot(path=shots / "2-enrolled.png")

        page.set_input_files("#recognize-file", str(MULTI))
        page.click("#recognize")
        page.wait_for_selector("#recognize-result li >> nth=1")
        drawn = page.get_attribute("#canvas", "data-names") or ""
        assert sorted(drawn.split("|")) == ["Kit Harington", "Rose Leslie"]
        assert f"FPIR {DEFAULT_FPIR}" in page.inner_text("#recognize-result")
        # Boxes were drawn in the decision's colour (green for a match) on the photo.
        green = page.evaluate(
            """() => { const c = document.getElementById('canvas'); const d = c.getContext('2d')
                .getImageData(0, 0, c.width, c.height).data; let n = 0;
                for (let i = 0; i < d.length; i += 4) if (d[i] === 10 && d[i+1] === 125 && d[i+2] === 50) n++;
                return n; }"""
        )
        assert green > 100
        page.screenshot(path=shots / "3-recognized.png")

        page.set_input_files("#verify-a", str(KIT[0]))
        page.set_input_files("#verify-b", str(KIT[2]))
        page.click("#verify")
        page.wait_for_selector("#verify-result:has-text('Same person')")
        assert f"decided at FMR {operating_point(DEFAULT_OPTIONS.model.model_id).fmr}" in page.inner_text(
            "#verify-result"
        )
        page.screenshot(path=shots / "4-verified.png")

        page.click("#people tr:has-text('Rose Leslie') button.delete")
        page.wait_for_selector("#collection-info:has-text('1 people')")
        page.wait_for_selector("#people td.name:has-text('Kit Harington')")
        assert "Rose Leslie" not in page.inner_text("#people")
        page.screenshot(path=shots / "5-deleted.png")
        browser.close()
    assert len(list(shots.glob("*.png"))) == 5
