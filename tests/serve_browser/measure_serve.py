#!/usr/bin/env python3
# Measurements of fastar serve for docs/perf.md (issue 18, "Benchmarks"); not a test.
#
#   latency:      key press → changed frame on the page's canvas, p50/p95, in headless Chromium. Each
#                 press holds Right or Left (alternating) until the first frame conditioned on it is
#                 drawn, then releases; the press and the release are both key changes, each one sample.
#                 The page measures it (app.js, fastarTest.latencies): from the keydown/keyup handler
#                 that sends the action to the drawImage of the first frame whose header carries that
#                 action's seq or a later one. A random pause before each press and each release
#                 spreads the key changes over the chunk's phase (a release right after the press's
#                 frame would always land just after the next chunk started: the worst case).
#   slow-client:  frames delivered vs generated for clients that read slowly (plain WebSocket,
#                 ws_client.py) next to a page-like reader, on --source world.
#
#   FASTAR_BINARY=build/fastar SE_OFFLINE=true python3 tests/serve_browser/measure_serve.py latency --source world --presses 30
#   FASTAR_BINARY=build/fastar SE_OFFLINE=true python3 tests/serve_browser/measure_serve.py latency --source model --presses 12
#   FASTAR_BINARY=build/fastar python3 tests/serve_browser/measure_serve.py slow-client --seconds 20
import argparse
import json
import random
import socket
import statistics
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import ROOT, ServeProcess, new_driver  # noqa: E402
from test_serve_browser import wait_for  # noqa: E402
from test_serve_load import PacedClient  # noqa: E402
from ws_client import Closed, WebSocketClient, frame_header  # noqa: E402

PROMPT = "a red circle bounces . a blue square drifts left . background stripes pans right ."


def percentile(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(p * len(s)))]


def measure_latency(args):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    extra = ["--model", str(ROOT / "models" / "world-small"), "--device", "cpu"] if args.source == "model" else []
    server = ServeProcess("--source", args.source, "--max-sessions", "1", "--fps", str(args.fps), *extra, *args.server_arg)
    driver = new_driver()
    rng = random.Random(args.seed)
    try:
        driver.get(f"{server.url}?prompt={PROMPT.replace(' ', '+')}&seed=1")
        wait_for(driver, "window.fastarTest && fastarTest.framesDrawn >= 6", timeout=60, what="the first frames")
        driver.execute_script("""window.genMs = [];
            fastarTest.ws.addEventListener('message', (e) => {
              if (typeof e.data !== 'string') return;
              const m = JSON.parse(e.data); if (m.type === 'chunk') genMs.push(m.gen_ms); });""")
        driver.find_element("id", "video").click()
        for i in range(args.presses):
            time.sleep(rng.uniform(0, args.phase_s))  # a random phase against the chunk boundaries
            key = Keys.ARROW_RIGHT if i % 2 == 0 else Keys.ARROW_LEFT
            ActionChains(driver).key_down(key).perform()
            seq = driver.execute_script("return fastarTest.keysSent")
            wait_for(driver, f"fastarTest.frameLog.some((f) => f.actionSeq >= {seq})", timeout=60, what="the press's frame")
            time.sleep(rng.uniform(0, args.phase_s))  # else the release lands just after a chunk started
            ActionChains(driver).key_up(key).perform()
            seq = driver.execute_script("return fastarTest.keysSent")
            wait_for(driver, f"fastarTest.frameLog.some((f) => f.actionSeq >= {seq})", timeout=60, what="the release's frame")
        latencies = driver.execute_script("return fastarTest.latencies")
        gen_ms = driver.execute_script("return genMs")
    finally:
        driver.quit()
        server.stop()
    result = {"source": args.source, "server_args": args.server_arg, "fps": args.fps, "samples": len(latencies),
              "p50_ms": percentile(latencies, 0.5), "p95_ms": percentile(latencies, 0.95), "max_ms": max(latencies),
              "chunk_gen_ms_median": statistics.median(gen_ms) if gen_ms else None, "chunks": len(gen_ms)}
    print(json.dumps(result))


class SlowReader(threading.Thread):
    """Reads at most `frames_per_s` frames a second. acks='read': acks what it read (a page on a slow
    link: the lead cap holds the server to it); acks='all': acks everything at once (no lead cap: only
    the outbox and the socket buffers hold the server back)."""

    def __init__(self, port, frames_per_s, acks, stop):
        super().__init__(daemon=True)
        self.port, self.period, self.acks, self.stop = port, 1.0 / frames_per_s, acks, stop
        self.session, self.read = None, 0

    def run(self):
        ws = WebSocketClient(self.port, mss=1448)  # a network's segment size, not loopback's 64 KiB
        ws.sock.settimeout(0.05)
        ws.send_json({"type": "hello", "v": 1, "prompt": "a red circle stays .", "seed": 3})
        next_read = next_ack = time.monotonic()
        while not self.stop.is_set():
            now = time.monotonic()
            if now >= next_ack:
                ws.send_json({"type": "ack", "frames": self.read if self.acks == "read" else 10 ** 12})
                next_ack = now + 0.1
            if now < next_read:
                time.sleep(min(next_read, next_ack) - now)
                continue
            try:
                message = ws.recv()
            except socket.timeout:
                continue
            except (Closed, OSError):  # closed by the server (the write stall)
                return
            if isinstance(message, bytes):
                frame_header(message)
                self.read += 1
                next_read = time.monotonic() + self.period
            elif json.loads(message)["type"] == "ready":
                self.session = json.loads(message)["session"]
        ws.close()


def measure_slow_client(args):
    server = ServeProcess("--source", "world", "--max-sessions", "3", "--fps", str(args.fps))
    port = int(server.url.rstrip("/").rsplit(":", 1)[1])
    stop = threading.Event()
    page = PacedClient(port, "page", "a blue square drifts left .", 1, stop)
    slow_read, slow_all = SlowReader(port, args.slow_fps, "read", stop), SlowReader(port, args.slow_fps, "all", stop)
    start = time.monotonic()
    last_seen, closed_at = {}, {}  # session → its last /metrics entry; → seconds when it left /metrics
    try:
        for c in (page, slow_read, slow_all):
            c.start()
        while time.monotonic() - start < args.seconds:
            time.sleep(0.5)
            with urllib.request.urlopen(server.url + "metrics", timeout=5) as response:
                now = {s["session"]: s for s in json.load(response)["sessions"]}
            for session in last_seen.keys() - now.keys():
                closed_at.setdefault(session, round(time.monotonic() - start, 1))
            last_seen.update(now)
        elapsed = time.monotonic() - start
    finally:
        stop.set()
        for c in (page, slow_read, slow_all):
            c.join(timeout=5)
        server.stop()
        print(server.process.stderr.read()[-2000:], file=sys.stderr)
    rows = [("page-like reader", page.session, len(page.arrivals)),
            (f"slow link, acks what it read ({args.slow_fps} frames/s)", slow_read.session, slow_read.read),
            (f"slow link, acks everything ({args.slow_fps} frames/s)", slow_all.session, slow_all.read)]
    for name, session, delivered in rows:
        g = last_seen[session]
        served_s = closed_at.get(session, elapsed)
        print(json.dumps({"client": name, "seconds": round(served_s, 1), "closed": session in closed_at,
                          "generated": g["frames"], "delivered": delivered,
                          "delivered_fps": round(delivered / served_s, 2), "outbox_pauses": g["outbox_pauses"],
                          "paused_ms": round(g["paused_ms"]), "dropped": g["dropped"]}))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="what", required=True)
    lat = sub.add_parser("latency")
    lat.add_argument("--source", choices=["world", "model"], default="world")
    lat.add_argument("--presses", type=int, default=30)
    lat.add_argument("--phase-s", type=float, default=None, help="random pause before each press, up to this")
    lat.add_argument("--fps", type=float, default=16)
    lat.add_argument("--seed", type=int, default=0)
    lat.add_argument("--server-arg", action="append", default=[], help="passed to fastar serve, e.g. --server-arg=--lead-chunks=1")
    slow = sub.add_parser("slow-client")
    slow.add_argument("--seconds", type=float, default=20)
    slow.add_argument("--fps", type=float, default=16)
    slow.add_argument("--slow-fps", type=float, default=4)
    args = parser.parse_args()
    if args.what == "latency":
        if args.phase_s is None:
            args.phase_s = 3.0 if args.source == "model" else 0.5
        measure_latency(args)
    else:
        measure_slow_client(args)


if __name__ == "__main__":
    main()
