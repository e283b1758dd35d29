# fastar serve in a real browser (serving-spec.md §6.8, "Browser"): headless Debian Chromium loads the
# embedded page from `fastar serve --source world`; keys move the player's ring, a prompt switch
# changes the canvas colours within two chunks, two browsers get independent streams.
import time
import urllib.parse

import pytest

from conftest import new_driver

# Canvas statistics, computed in the page: the centroid of the ring's near-white pixels (min channel
# > 170) and the counts of red-, green- and blue-dominant pixels.
CANVAS_STATS = """
const c = document.getElementById('video');
const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
let n = 0, sx = 0, sy = 0, red = 0, green = 0, blue = 0;
for (let i = 0; i < d.length; i += 4) {
  const r = d[i], g = d[i + 1], b = d[i + 2], p = i / 4;
  if (Math.min(r, g, b) > 170) { n++; sx += p % c.width; sy += Math.floor(p / c.width); }
  if (r > 150 && g < 90 && b < 90) red++;
  if (g > 150 && r < 90 && b < 90) green++;
  if (b > 180 && r < 110 && g < 140) blue++;
}
return {n, x: n ? sx / n : -1, y: n ? sy / n : -1, red, green, blue,
        frame: window.fastarTest.lastFrameIndex, drawn: window.fastarTest.framesDrawn};
"""


def wait_for(driver, condition_js, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script("return " + condition_js)
        if value:
            return value
        time.sleep(0.03)
    state = driver.execute_script("return JSON.stringify({drawn: fastarTest.framesDrawn, closed: fastarTest.closed, "
                                  "errors: fastarTest.errors})")
    raise AssertionError(f"timed out waiting for {what}; page state {state}")


def open_page(driver, server, prompt, seed=1):
    driver.get(f"{server.url}?{urllib.parse.urlencode({'prompt': prompt, 'seed': seed})}")
    wait_for(driver, "window.fastarTest && window.fastarTest.framesDrawn >= 6", what="the first frames")


def stats(driver):
    return driver.execute_script(CANVAS_STATS)


def hold(driver, key, seconds):
    from selenium.webdriver.common.action_chains import ActionChains
    ActionChains(driver).key_down(key).perform()
    time.sleep(seconds)  # holding a key is a duration by nature
    ActionChains(driver).key_up(key).perform()


def settle(driver):
    """Waits until the ring stops moving (the frames generated while the key was held are drawn)."""
    last = stats(driver)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        time.sleep(0.4)
        now = stats(driver)
        if abs(now["x"] - last["x"]) < 0.01 and abs(now["y"] - last["y"]) < 0.01:
            return now
        last = now
    raise AssertionError("the ring kept moving after the key was released")


def test_holding_right_moves_the_ring_right(world_server, driver, artifact_dir):
    from selenium.webdriver.common.keys import Keys
    open_page(driver, world_server, "a red square stays .")
    driver.find_element("id", "video").click()
    hold(driver, Keys.ARROW_LEFT, 1.0)      # to the left edge first: the ring then has room to move right
    before = settle(driver)
    hold(driver, Keys.ARROW_RIGHT, 1.0)
    after = settle(driver)
    assert before["n"] > 20 and after["n"] > 20, (before, after)
    # 2 px per frame while held (docs/world.md): ~1 s at 16 fps is ~32 px, less the key-to-frame delay.
    assert after["x"] - before["x"] >= 12, (before, after)
    assert abs(after["y"] - before["y"]) < 1.0, (before, after)
    latencies = driver.execute_script("return fastarTest.latencies")
    assert latencies, "the page measured no key-to-frame latency"
    latencies = sorted(latencies)
    print(f"\nkey→frame on --source world: {len(latencies)} presses, "
          f"p50 {latencies[len(latencies) // 2]:.0f} ms, max {latencies[-1]:.0f} ms")
    driver.save_screenshot(str(artifact_dir / "serve-screenshot.png"))


def test_prompt_colour_switch_changes_the_canvas_within_two_chunks(world_server, driver):
    open_page(driver, world_server, "a big red square stays .")
    first = stats(driver)
    assert first["red"] > 100 and first["green"] == 0, first
    box = driver.find_element("id", "prompt")
    box.clear()
    box.send_keys("a big green square stays .")
    driver.find_element("id", "switch").click()
    applied = wait_for(driver, "fastarTest.promptApplied[0]", what="prompt_applied")
    chunk = driver.execute_script("return fastarTest.ready.chunk_frames")
    wait_for(driver, f"fastarTest.lastFrameIndex >= {applied['at_frame']}", what="the first frame of the new prompt")
    now = stats(driver)
    assert now["frame"] < applied["at_frame"] + 2 * chunk, ("read too late to judge", now, applied)
    assert now["red"] < 5 and now["green"] > 100, (first, now)


def test_two_browsers_get_independent_streams(world_server, driver):
    from selenium.webdriver.common.keys import Keys
    other = new_driver()
    try:
        open_page(driver, world_server, "a big red circle stays .", seed=2)
        open_page(other, world_server, "a big blue circle stays .", seed=2)
        mine, theirs = stats(driver), stats(other)
        assert mine["red"] > 50 and mine["blue"] == 0, mine
        assert theirs["blue"] > 50 and theirs["red"] == 0, theirs
        driver.find_element("id", "video").click()
        hold(driver, Keys.ARROW_DOWN, 0.6)
        moved, still = settle(driver), stats(other)
        assert moved["y"] - mine["y"] >= 4, (mine, moved)
        assert abs(still["y"] - theirs["y"]) < 0.5 and abs(still["x"] - theirs["x"]) < 0.5, (theirs, still)
        assert still["frame"] > theirs["frame"], "the other stream must keep advancing"
    finally:
        other.quit()
