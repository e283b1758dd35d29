# Fixtures of the browser tests (serving-spec.md §4, §6.8): a `fastar serve --source world` on a free
# loopback port, and headless Debian Chromium driven by Selenium, offline. Skipped, with the reason,
# when the binary, chromium, chromedriver or Selenium is missing (the load test: only the binary).
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMEDRIVER = "/usr/bin/chromedriver"


def fastar_binary():
    given = os.environ.get("FASTAR_BINARY")
    if given:
        return Path(given)
    for build in ("build", "build-serve"):
        if (ROOT / build / "fastar").exists():
            return ROOT / build / "fastar"
    return None


def missing_binary():
    if fastar_binary() is None or not fastar_binary().exists():
        return "no fastar binary (build it, or set FASTAR_BINARY)"
    return None


def missing_prerequisite():
    if missing_binary():
        return missing_binary()
    if shutil.which("chromium") is None:
        return "Debian chromium is not installed (apt-get install chromium chromium-driver)"
    if not Path(CHROMEDRIVER).exists():
        return "chromedriver is not installed (apt-get install chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "Selenium is not installed (pip install selenium)"
    return None


def pytest_collection_modifyitems(config, items):
    # The browser's prerequisites bind only the tests that drive a browser; the load test talks
    # WebSocket itself (ws_client.py) and needs only the binary.
    browser_reason, binary_reason = missing_prerequisite(), missing_binary()
    for item in items:
        reason = browser_reason if "driver" in getattr(item, "fixturenames", ()) else binary_reason
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


class ServeProcess:
    """A running `fastar serve`; stop() sends SIGTERM and returns the exit code."""

    def __init__(self, *args):
        self.process = subprocess.Popen([str(fastar_binary()), "serve", "--port", "0", *args],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        if "http://" not in line:
            self.process.kill()
            raise RuntimeError(f"fastar serve did not start: {line!r} {self.process.stderr.read()}")
        self.url = line.split()[2]

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=10)
        finally:
            if self.process.poll() is None:
                self.process.kill()


@pytest.fixture(scope="module")
def world_server():
    server = ServeProcess("--source", "world", "--max-sessions", "4", "--fps", "16")
    yield server
    assert server.stop() == 0, "SIGTERM must close every session cleanly and exit 0"


def new_driver():
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not reach the network
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=720,900",
                 "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
                 "--disable-backgrounding-occluded-windows", "--disable-extensions", "--no-first-run"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


@pytest.fixture
def driver():
    d = new_driver()
    yield d
    d.quit()


@pytest.fixture
def artifact_dir():
    path = Path(os.environ.get("FASTAR_SERVE_ARTIFACTS", ROOT / "build" / "serve-browser"))
    path.mkdir(parents=True, exist_ok=True)
    return path
