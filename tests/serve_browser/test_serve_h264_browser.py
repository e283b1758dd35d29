# `fastar serve --codec h264` in a real browser (issue 18: "H.264 through libavcodec decoded by WebCodecs
# as an option for large frames"): headless Debian Chromium decodes the server's Annex-B access units
# with a WebCodecs VideoDecoder onto the canvas, and holding Right moves the ring right. A browser whose
# WebCodecs cannot decode the stream must fall back to JPEG (set_video) and keep drawing: that path is
# forced with ?webcodecs=off, and it is what the first test asserts if this Chromium lacks H.264.
import time
import urllib.parse

import pytest

from conftest import ServeProcess
from test_serve_browser import hold, settle, stats, wait_for

PAGE_STATE = """
const t = window.fastarTest;
return {video: t.video, fallback: t.fallback, decoded: t.h264Decoded, kinds: t.mediaKinds, drawn: t.framesDrawn,
        codec: t.ready && t.ready.codec, readyVideo: t.ready && t.ready.video};
"""

# What this browser's WebCodecs says about the server's codec string, asked directly.
H264_SUPPORT = """
const done = arguments[arguments.length - 1];
if (typeof VideoDecoder === 'undefined') { done('no VideoDecoder'); return; }
VideoDecoder.isConfigSupported({codec: arguments[0], optimizeForLatency: true})
  .then((r) => done(r.supported ? 'supported' : 'not supported'), (e) => done('error: ' + e.message));
"""


@pytest.fixture(scope="module")
def h264_server():
    server = ServeProcess("--source", "world", "--codec", "h264", "--max-sessions", "4", "--fps", "16")
    yield server
    assert server.stop() == 0, "SIGTERM must close every session cleanly and exit 0"


def open_page(driver, server, prompt, **extra):
    query = {"prompt": prompt, "seed": 1, **extra}
    driver.get(f"{server.url}?{urllib.parse.urlencode(query)}")
    wait_for(driver, "window.fastarTest && window.fastarTest.framesDrawn >= 6", what="the first frames")
    return driver.execute_script(PAGE_STATE)


def test_h264_holding_right_moves_the_ring_right(h264_server, driver, artifact_dir):
    from selenium.webdriver.common.keys import Keys
    state = open_page(driver, h264_server, "a red square stays .")
    assert state["readyVideo"] == "h264" and state["codec"] == "avc1.42C00A", state
    support = driver.execute_async_script(H264_SUPPORT, state["codec"])
    if support == "supported":
        # The H.264 path: every drawn frame came through the VideoDecoder, and no fallback happened.
        assert state["fallback"] is None and state["video"] == "h264", state
        assert state["decoded"] >= 6 and state["kinds"]["h264"] >= 6 and state["kinds"]["jpeg"] == 0, state
    else:
        # This Chromium cannot decode it: the page must have asked for JPEG and gone on drawing.
        wait_for(driver, "fastarTest.video === 'jpeg' && fastarTest.mediaKinds.jpeg >= 6", what="the JPEG fallback")
        state = driver.execute_script(PAGE_STATE)
        assert state["fallback"], state
    print(f"\nWebCodecs H.264 in this Chromium: {support}; page state {state}")
    driver.find_element("id", "video").click()
    hold(driver, Keys.ARROW_LEFT, 1.0)  # to the left edge first: the ring then has room to move right
    before = settle(driver)
    hold(driver, Keys.ARROW_RIGHT, 1.0)
    after = settle(driver)
    assert before["n"] > 20 and after["n"] > 20, (before, after)
    # As the JPEG test (2 px per frame while held), with room for compression at the ring's edges.
    assert after["x"] - before["x"] >= 10, (before, after)
    assert abs(after["y"] - before["y"]) < 2.0, (before, after)
    if support == "supported":
        final = driver.execute_script(PAGE_STATE)
        assert final["fallback"] is None and final["kinds"]["jpeg"] == 0, final
    driver.save_screenshot(str(artifact_dir / "serve-h264-screenshot.png"))


def test_without_webcodecs_the_page_falls_back_to_jpeg(h264_server, driver):
    # ?webcodecs=off: the page acts as a browser without H.264 in WebCodecs would.
    driver.get(f"{h264_server.url}?{urllib.parse.urlencode({'prompt': 'a big red square stays .', 'seed': 1, 'webcodecs': 'off'})}")
    wait_for(driver, "window.fastarTest && fastarTest.video === 'jpeg' && fastarTest.mediaKinds.jpeg >= 6 "
                     "&& fastarTest.framesDrawn >= 6", what="the JPEG fallback")
    state = driver.execute_script(PAGE_STATE)
    assert state["readyVideo"] == "h264" and "webcodecs=off" in state["fallback"], state
    assert state["decoded"] == 0, state
    drawn = state["drawn"]
    wait_for(driver, f"fastarTest.framesDrawn >= {drawn + 16}", what="frames after the fallback")
    now = stats(driver)
    assert now["red"] > 100, ("never a blank page: the red square is drawn", now)
    message = driver.find_element("id", "message").text
    assert "switched to JPEG" in message, message
