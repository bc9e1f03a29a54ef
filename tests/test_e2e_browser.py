"""End to end in a real browser (Debian's chromium through Playwright): upload the sample, watch it being
processed, search, click the top moment and check that the player jumped there; the sample example is
served from Gradio's cache after its first use. Screenshots go to a temporary folder (printed); with
HEROVID_REFRESH_SCREENSHOTS=1 they replace the ones in docs/ that the README shows."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from demo.ui import service
from tests.app_server import launched_app
from tests.conftest import ROOT, SAMPLE

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
    "--mute-audio",
]


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    """Where screenshots go: docs/ only when asked (HEROVID_REFRESH_SCREENSHOTS=1), so a test run leaves
    the tracked files alone."""
    if os.environ.get("HEROVID_REFRESH_SCREENSHOTS") == "1":
        folder = ROOT / "docs"
        folder.mkdir(exist_ok=True)
    else:
        folder = tmp_path_factory.mktemp("screenshots")
    print(f"screenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def examples_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("examples")


@pytest.fixture(scope="module")
def page(data_dir, examples_dir):
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -r requirements-dev.txt")
    if not CHROMIUM.is_file():
        pytest.skip("no /usr/bin/chromium (apt-get install chromium; .ci/run does it)")
    with launched_app(data_dir, examples_dir) as url, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1366, "height": 1000})
        page.set_default_timeout(30_000)
        page.goto(url)
        page.wait_for_selector("#video-upload")
        page.app_url = url
        yield page
        browser.close()


def player_time(page) -> float:
    return page.evaluate("document.querySelector('#player video').currentTime")


@pytest.fixture(scope="module")
def uploaded(page):
    page.set_input_files("#video-upload input[type=file]", str(SAMPLE))
    page.wait_for_selector("#transcript .hv-line", timeout=240_000)  # Whisper on 2 CPU cores: ~20 s
    page.wait_for_function(
        "(() => { const v = document.querySelector('#player video'); return v && v.readyState >= 1; })()"
    )
    return page


def test_upload_shows_transcript_timeline_and_player(uploaded):
    page = uploaded
    lines = page.locator("#transcript .hv-line")
    assert lines.count() >= 4 and "astronaut" in lines.first.inner_text().lower()
    assert page.locator("#timeline .tl-sub").count() == lines.count()
    duration = page.evaluate("document.querySelector('#player video').duration")
    assert abs(duration - 33.0) < 1.0
    assert page.locator("#player track").count() == 1  # the WebVTT subtitles are on the player

    third = lines.nth(2)
    start = float(third.get_attribute("data-start"))
    third.click()
    assert abs(player_time(page) - start) <= 1.0


@pytest.mark.skipif(service("search") is None, reason="demo/search.py has not landed yet")
def test_search_then_click_the_top_moment_seeks_the_player(uploaded, shots):
    page = uploaded
    page.get_by_role("tab", name="Search moments").click()
    page.fill("#search-query textarea", "a rocket stands on the launch pad")
    page.click("#search-btn")
    page.wait_for_selector("#moments .hv-moment", timeout=120_000)
    page.wait_for_selector("#timeline .tl-moment")
    top = page.locator("#moments .hv-moment").first
    start = float(top.get_attribute("data-start"))
    assert 18.0 <= start <= 26.0, "the rocket is shown from 18 s to 25 s"
    page.evaluate("document.querySelector('#player video').currentTime = 0")
    top.click()
    assert abs(player_time(page) - start) <= 1.0
    page.evaluate("document.querySelector('#player video').pause()")
    page.wait_for_timeout(500)  # the selection band and the playhead are drawn
    page.screenshot(path=str(shots / "screenshot.png"), full_page=True)

    band = page.locator("#timeline .tl-band.tl-moment").last  # drawn last: the best one
    page.evaluate("document.querySelector('#player video').currentTime = 0")
    band.click()
    assert abs(player_time(page) - float(band.get_attribute("data-start"))) <= 1.0


@pytest.mark.skipif(service("qa") is None, reason="demo/qa.py has not landed yet")
def test_ask_highlights_the_evidence_and_jumps_there(uploaded, shots):
    page = uploaded
    page.get_by_role("tab", name="Ask").click()
    page.fill("#question textarea", "What animal looks at the camera?")
    page.fill("#candidates textarea", "a dog\na ginger cat\na horse")
    page.click("#ask-btn")
    page.wait_for_selector("#answer .hv-jump", timeout=120_000)
    assert "cat" in page.inner_text("#answer .hv-big")
    assert page.locator("#timeline .tl-evidence").count() == 1
    jump = page.locator("#answer .hv-jump")
    page.evaluate("document.querySelector('#player video').currentTime = 0")
    jump.click()
    assert abs(player_time(page) - float(jump.get_attribute("data-t"))) <= 1.0
    page.evaluate("document.querySelector('#player video').pause()")
    page.screenshot(path=str(shots / "screenshot_ask.png"), full_page=True)


@pytest.mark.skipif(service("search") is None, reason="demo/search.py has not landed yet")
def test_library_search_plays_the_moment_in_the_results(uploaded, shots):
    page = uploaded
    page.get_by_role("tab", name="Library").click()
    page.wait_for_selector("#library .hv-video")
    page.fill("#library-query textarea", "a cup of coffee on a saucer")
    page.click("#library-search-btn")
    page.wait_for_selector("#library-results .hv-group video", timeout=120_000)
    page.wait_for_function(
        "(() => { const v = document.querySelector('#library-results .hv-group video');"
        " return v && v.readyState >= 1; })()"
    )  # the library's copy of the video is served and playable
    chip = page.locator("#library-results .hv-chip").first
    chip.click()
    t = page.evaluate("document.querySelector('#library-results .hv-group video').currentTime")
    assert abs(t - float(chip.get_attribute("data-start"))) <= 1.0
    page.evaluate("document.querySelector('#library-results .hv-group video').pause()")
    page.screenshot(path=str(shots / "screenshot_library.png"), full_page=True)


def open_example(page) -> None:
    """A fresh page, a click on the sample example, until its transcript and player are there."""
    page.goto(page.app_url)
    page.wait_for_selector("#video-upload")
    page.get_by_text("sample.mp4").first.click()  # the example's label in the Examples table
    page.wait_for_selector("#transcript .hv-line", timeout=240_000)
    page.wait_for_function(
        "(() => { const v = document.querySelector('#player video'); return v && v.readyState >= 1; })()"
    )


def test_sample_example_is_cached_after_its_first_use(uploaded, examples_dir, monkeypatch):
    import demo.pipeline

    page = uploaded
    open_example(page)  # first use: runs ingest (a content-hash hit here) and fills the cache
    assert list(examples_dir.rglob("log.csv")), "the example was not cached"
    assert page.locator("#player track").count() == 1 and page.locator("#transcript .hv-line").count() >= 4

    def boom(*a, **k):
        raise AssertionError("the cached example ran ingest again")

    monkeypatch.setattr(demo.pipeline, "ingest", boom)  # the app runs in this process
    open_example(page)  # served from the cache; the player and this session follow
    assert page.locator("#player track").count() == 1
    assert not page.locator(".toast-body").count(), page.locator(".toast-body").all_inner_texts()
    if service("captions") is not None:
        page.get_by_role("tab", name="Captions").click()
        page.click("#caption-btn")  # this session knows the video
        page.wait_for_selector("#chapters [data-t]", timeout=120_000)
