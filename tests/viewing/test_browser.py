"""A real browser: Debian's Chromium, headless, driven by Selenium, opens the
/visual page of a running stream; what it renders is not blank and changes.
For a stream without frames, an <img> keeps showing the placeholder while a
script's fetch (and the /visual page's) gets the header-only status parts."""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.events.conftest import stream_make

from .conftest import LIVE_SID
from .nodeflux_client import Tile
from .support import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
# Set to a folder to keep what the browser rendered (for a look by eye).
SCREENSHOTS = os.environ.get("VISIONAIRE_TEST_SCREENSHOTS", "")


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="viewing-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=640,480",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    # The driver is named, so Selenium Manager never looks for (or downloads) one.
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(driver) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(driver.get_screenshot_as_png(), np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def showing_frames(driver) -> bool:
    # The page shows each part as a blob: URL in its <img>; naturalWidth > 0 once one decoded.
    return driver.execute_script(
        "const img = document.getElementById('view');"
        "return img.src.startsWith('blob:') && img.complete && img.naturalWidth > 0;"
    )


@pytest.mark.parametrize("analytic", ["", "/TEST-BRIGHT"])
def test_visual_page_shows_the_live_stream(asgi_server, live_stream, browser, analytic):
    browser.get(asgi_server.url(f"/visual/0/{LIVE_SID}{analytic}?fps=10&height=240"))
    wait_for(lambda: showing_frames(browser), timeout=20, what="the page to show a frame")
    wait_for(lambda: note(browser) == "", timeout=10, what="the page to say nothing (no reconnect note)")
    first, first_at = screenshot(browser), time.monotonic()

    def later_and_changed():
        # Frames come at 10 fps: a screenshot a second or more later must differ.
        if time.monotonic() - first_at < 1.0:
            return None
        shot = screenshot(browser)
        return [shot] if np.abs(shot.astype(int) - first).mean() > 1 else None

    (second,) = wait_for(later_and_changed, timeout=6, what="the rendered page to change")
    if SCREENSHOTS:
        cv2.imwrite(str(Path(SCREENSHOTS) / f"visual{analytic.replace('/', '-')}.png"), second)
    for shot in (first, second):
        # Not blank: the picture has structure (testsrc's colours and counter), not one colour.
        assert shot.std() > 20, shot.std()
        assert len(np.unique(shot.reshape(-1, 3), axis=0)) > 50
    assert browser.title == "Viewing test" + (" - TEST-BRIGHT" if analytic else "")


def note(driver) -> str:
    return driver.execute_script("return document.getElementById('note').textContent")


def test_visual_page_reconnects_when_the_server_restarts(asgi_server, live_stream, browser):
    browser.get(asgi_server.url(f"/visual/0/{LIVE_SID}?fps=5&height=120"))
    wait_for(
        lambda: showing_frames(browser) and note(browser) == "", timeout=20, what="the page to show frames"
    )
    # The connection drops and the server refuses connections for a moment.
    asgi_server.stop()
    wait_for(lambda: note(browser).startswith("Reconnecting"), timeout=15, what="the page to notice")
    asgi_server.restart_after_stop()
    wait_for(
        lambda: note(browser) == "" and showing_frames(browser),
        timeout=30,
        what="the page to reconnect and show frames again",
    )
    assert asgi_server.hub_stats()["clients"] == 1


# Reads an MJPEG with fetch() as a page's script does, for about `ms`; the chunks
# its reader handed over, base64 (Selenium passes strings, not bytes).
RECORD_FETCH = """
const [url, ms, done] = arguments;
const controller = new AbortController();
const chunks = [];
fetch(url, {signal: controller.signal, cache: "no-store"}).then(async (response) => {
  const reader = response.body.getReader();
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const {value, done: ended} = await reader.read();
    if (ended) break;
    let text = "";
    for (let i = 0; i < value.length; i += 8192) {
      text += String.fromCharCode.apply(null, value.subarray(i, i + 8192));
    }
    chunks.push(btoa(text));
  }
  controller.abort();
  done(chunks);
}).catch((error) => done("fetch failed: " + error));
"""


def image_state(driver, element_id: str) -> tuple[bool, int]:
    return tuple(
        driver.execute_script(
            "const img = document.getElementById(arguments[0]); return [img.complete, img.naturalWidth];",
            element_id,
        )
    )


def test_img_keeps_the_placeholder_while_scripts_get_status_parts(asgi_server, transactional_db, browser):
    sid = "00000000000000b3"
    stream_make(sid)  # active, no node runs it: placeholders only
    path = f"/mjpeg/0/{sid}?height=120"
    # The /visual page reads that MJPEG with fetch(), so it gets the status parts too.
    browser.get(asgi_server.url(f"/visual/0/{sid}?height=120"))
    browser.execute_script(
        "const img = document.createElement('img'); img.id = 'probe'; img.src = arguments[0];"
        "document.body.appendChild(img);",
        path,
    )
    wait_for(lambda: image_state(browser, "probe") == (True, 213), timeout=20, what="the <img>'s picture")
    hub = asgi_server.hub()

    async def ticks():
        feed = hub.feeds.get(sid)
        return sum(variant.parts_made for variant in feed.variants.values()) if feed else 0

    first = asgi_server.call(ticks)
    # Chromium takes a picture as done when the next part starts: an empty part
    # would break the image at the tick after it.
    wait_for(lambda: asgi_server.call(ticks) >= first + 4, timeout=20, what="four more status ticks")
    assert image_state(browser, "probe") == (True, 213), "the <img> broke on the status ticks"
    assert showing_frames(browser) and note(browser) == ""  # the page: a picture, no reconnect note
    assert image_state(browser, "view")[1] == 213
    # A script's fetch from the page: Chromium's own request headers, its own chunks.
    browser.set_script_timeout(30)
    chunks = browser.execute_async_script(RECORD_FETCH, path, 3500)
    assert isinstance(chunks, list), chunks
    tile = Tile().feed_all(base64.b64decode(chunk) for chunk in chunks)
    assert len(tile.pictures) >= 2 and tile.picture_sizes()[0] == (213, 120)
    assert tile.shown() == "Stream is initializing" and not tile.removed
