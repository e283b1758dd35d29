# Load (issue 18, "Tests": load): 8 sessions on `fastar serve --source world` for
# FASTAR_SERVE_LOAD_SECONDS (default 60) through plain WebSocket clients (ws_client.py), plus one client
# that stops reading. Checks: the server's resident set (VmRSS) at the end is within 5% of the one
# after 10 s; every reader is served at the page's rate with no frame missing; the client that stops
# reading does not slow the readers and is closed after --stall-timeout.
#
# Each reader behaves like the page without a browser: it reads every message, "draws" frames at the
# stream's fps from its first frame on, and acks what it drew every 100 ms (the server's lead cap, 2
# chunks, then paces it at the fps). The stalled client reads like that until STALL_AT, then stops
# reading but keeps acking as if it drew everything: without those acks the lead cap would stop the
# server from writing to it at all and nothing would stall; with them the server fills its socket,
# its outbox fills, and the write stall closes it (the server caps each socket's send buffer at 256 KiB,
# ServerOptions::socket_send_buffer_bytes, so that takes about a second, not the 4 MiB of autotuning).
#
# Timing assertions are loose because CI's 2 cores are shared with other builds: rates are compared
# with 0.8 × the fps (the world source generates in microseconds, so only a starved machine is slower)
# and with 0.8 × the same reader's rate before the stall; the stall must close within
# --stall-timeout + 8 s of the client's last read (socket buffers fill first).
import json
import os
import socket
import threading
import time
import urllib.request

from conftest import ServeProcess
from ws_client import Closed, WebSocketClient, frame_header

FPS = 16
READERS = 8
STALL_TIMEOUT_S = 2.0
RSS_AT_S = 10.0
STALL_AT_S = 12.0
ACK_PERIOD_S = 0.1
STALLED_ACK_PERIOD_S = 0.025  # 40 messages/s: under --max-message-rate (50/s); each opens 2 more chunks
PROMPTS = ["a red circle stays .", "a blue square drifts left .", "a green circle bounces .",
           "a big red square stays ."]


class PacedClient(threading.Thread):
    """One session. stop_reading_at (monotonic): from then on it reads nothing and acks everything."""

    def __init__(self, port, name, prompt, seed, stop, stop_reading_at=None, receive_buffer=None):
        super().__init__(name=name, daemon=True)
        self.port, self.prompt, self.seed, self.stop = port, prompt, seed, stop
        self.stop_reading_at, self.receive_buffer = stop_reading_at, receive_buffer
        self.session = None
        self.arrivals = []          # monotonic time of every frame received
        self.gaps = []              # (expected, got) frame indices where a frame was missing
        self.errors = []            # error messages from the server
        self.closed_code = "open"   # the close code, None for a socket that ended without one
        self.send_failed_at = None  # the stalled client: when the server's socket went away
        self.failure = None

    def run(self):
        try:
            self._run()
        except Exception as e:  # reported by the test, not lost in a thread
            self.failure = repr(e)

    def _run(self):
        ws = WebSocketClient(self.port, receive_buffer=self.receive_buffer)
        ws.sock.settimeout(0.05)
        ws.send_json({"type": "hello", "v": 1, "prompt": self.prompt, "seed": self.seed})
        first_frame_at, next_ack, expected = None, time.monotonic(), 0
        try:
            while not self.stop.is_set():
                now = time.monotonic()
                if self.stop_reading_at is not None and now >= self.stop_reading_at:
                    if now >= next_ack:
                        try:
                            ws.send_json({"type": "ack", "frames": 10 ** 12})  # "drew everything" (clamped)
                        except OSError:
                            self.send_failed_at = time.monotonic()
                            return
                        next_ack = now + STALLED_ACK_PERIOD_S
                    time.sleep(0.005)
                    continue
                try:
                    message = ws.recv()
                except socket.timeout:
                    message = None
                except Closed as c:
                    self.closed_code = c.code
                    return
                now = time.monotonic()
                if isinstance(message, bytes):
                    frame = frame_header(message)[0]
                    if frame != expected:
                        self.gaps.append((expected, frame))
                    expected = frame + 1
                    self.arrivals.append(now)
                    first_frame_at = first_frame_at or now
                elif message is not None:
                    m = json.loads(message)
                    if m["type"] == "ready":
                        self.session = m["session"]
                    elif m["type"] == "error":
                        self.errors.append(m)
                if now >= next_ack:
                    drawn = 0 if first_frame_at is None else min(len(self.arrivals), int((now - first_frame_at) * FPS) + 1)
                    ws.send_json({"type": "ack", "frames": drawn})
                    next_ack = now + ACK_PERIOD_S
        finally:
            ws.close()

    def rate(self, start, end):
        return sum(start <= t < end for t in self.arrivals) / (end - start)


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/PID/status")


def metrics(url):
    with urllib.request.urlopen(url + "metrics", timeout=5) as response:
        return json.load(response)


def test_eight_sessions_and_a_stalled_client():
    duration = float(os.environ.get("FASTAR_SERVE_LOAD_SECONDS", "60"))
    assert duration >= 20, "FASTAR_SERVE_LOAD_SECONDS must be at least 20 (RSS at 10 s, the stall at 12 s)"
    server = ServeProcess("--source", "world", "--max-sessions", str(READERS + 1), "--fps", str(FPS),
                          "--stall-timeout", str(STALL_TIMEOUT_S))
    port = int(server.url.rstrip("/").rsplit(":", 1)[1])
    stop = threading.Event()
    start = time.monotonic()
    readers = [PacedClient(port, f"reader{i}", PROMPTS[i % len(PROMPTS)], i, stop) for i in range(READERS)]
    stalled = PacedClient(port, "stalled", "a red circle stays .", 99, stop, stop_reading_at=start + STALL_AT_S,
                          receive_buffer=4096)
    try:
        for client in readers + [stalled]:
            client.start()
        time.sleep(RSS_AT_S - (time.monotonic() - start))  # the schedule of the test is wall time by nature
        rss_early = rss_kb(server.process.pid)

        # Until the stalled session is gone from /metrics: its frames generated, and when it went.
        stalled_generated, closed_at = None, None
        while time.monotonic() - start < duration:
            entry = [s for s in metrics(server.url)["sessions"] if s["session"] == stalled.session]
            if entry:
                stalled_generated = entry[0]["frames"]
            elif closed_at is None and time.monotonic() - start > STALL_AT_S:
                closed_at = time.monotonic()
            time.sleep(0.25)
        final = metrics(server.url)
        rss_end = rss_kb(server.process.pid)
    finally:
        stop.set()
        for client in readers + [stalled]:
            client.join(timeout=5)
        code = server.stop()
    end = start + duration
    stall_begin = start + STALL_AT_S

    for client in readers + [stalled]:
        assert client.failure is None, (client.name, client.failure)
    generated = {s["session"]: s["frames"] for s in final["sessions"]}
    print(f"\nload: {READERS} readers for {duration:.0f} s at {FPS} fps; VmRSS {rss_early} kB at {RSS_AT_S:.0f} s, "
          f"{rss_end} kB at the end ({100 * (rss_end / rss_early - 1):+.1f}%)")
    assert code == 0, "SIGTERM must close every session cleanly and exit 0"
    assert rss_end <= 1.05 * rss_early, f"VmRSS grew from {rss_early} kB to {rss_end} kB (> 5%)"

    # The stalled client: closed by the write stall (its socket went away; no close frame can pass a
    # full socket), within --stall-timeout plus the time its socket buffers took to fill.
    assert closed_at is not None, "the client that stopped reading was never closed"
    stall_close_s = closed_at - stall_begin
    received_by_stalled = len(stalled.arrivals)
    print(f"stalled client: stopped reading at {STALL_AT_S:.0f} s, closed {stall_close_s:.1f} s later "
          f"(--stall-timeout {STALL_TIMEOUT_S}); frames generated for it {stalled_generated}, read {received_by_stalled}")
    assert stall_close_s >= STALL_TIMEOUT_S - 0.3, ("closed before --stall-timeout could pass", stall_close_s)
    assert stall_close_s <= STALL_TIMEOUT_S + 8, stall_close_s
    assert final["open_sessions"] == READERS and final["admitted"] == READERS + 1, final

    stall_window_end = max(closed_at, stall_begin + 5)
    for r in readers:
        baseline = r.rate(start + 3, stall_begin)        # after the first chunks, before the stall
        during = r.rate(stall_begin, stall_window_end)   # while the stalled client was being pushed
        overall = r.rate(start + 3, end)
        print(f"{r.name} (session {r.session}): {len(r.arrivals)} frames read, {generated.get(r.session)} generated; "
              f"{baseline:.1f} fps before the stall, {during:.1f} during, {overall:.1f} overall")
        assert r.closed_code == "open", (r.name, r.closed_code)
        assert not r.errors, (r.name, r.errors)
        assert not r.gaps, (r.name, "missing frames", r.gaps[:5])
        assert r.session in generated, (r.name, "not open at the end", final)
        assert overall >= 0.8 * FPS, (r.name, overall)
        assert during >= 0.8 * baseline, (r.name, "slowed by the stalled client", baseline, during)
