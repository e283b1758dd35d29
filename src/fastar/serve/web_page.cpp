#include "fastar/serve/web_page.h"

namespace fastar::serve {

const char* const kIndexHtml = R"PAGE(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>fastar serve</title>
<style>
  body { font: 14px system-ui, sans-serif; background: #15171c; color: #e6e6e6; margin: 24px; }
  h1 { font-size: 18px; margin: 0 0 12px; }
  #stage { position: relative; width: 448px; height: 448px; background: #000; }
  #video { width: 448px; height: 448px; image-rendering: pixelated; display: block; outline: none; }
  #overlay { position: absolute; left: 6px; top: 6px; padding: 4px 6px; background: rgba(0,0,0,.55);
             font: 12px ui-monospace, monospace; white-space: pre; pointer-events: none; }
  #controls { margin: 12px 0; display: flex; gap: 8px; align-items: center; flex-wrap: wrap; width: 448px; }
  #prompt { flex: 1; min-width: 260px; padding: 4px; }
  button { padding: 4px 10px; }
  #message { min-height: 18px; color: #ffb86b; width: 448px; }
  #plot { background: #0d0e12; display: block; margin-top: 6px; }
  .hint { color: #8a8f98; font-size: 12px; }
</style>
</head>
<body>
<h1>fastar serve <span id="source" class="hint"></span></h1>
<div id="stage"><canvas id="video" width="64" height="64" tabindex="0"></canvas><div id="overlay">connecting…</div></div>
<div id="controls">
  <input id="prompt" type="text" spellcheck="false" value="a red circle bounces .">
  <label><input id="recache" type="checkbox" checked> re-cache</label>
  <button id="switch">switch prompt</button>
  <button id="pause">pause</button>
  <button id="reset">reset</button>
</div>
<div id="message"></div>
<canvas id="plot" width="448" height="90"></canvas>
<div class="hint">arrow keys / WASD steer the player · frames/s (green) and KV memory (orange) over the last minute</div>
<script src="/app.js"></script>
</body>
</html>
)PAGE";

const char* const kAppJs = R"PAGE('use strict';
// fastar serve's page (serving-spec.md §6.7): draws JPEG frames, or H.264 frames decoded by WebCodecs,
// as they arrive, paced at the stream's fps; sends the held keys as latest state; acks what it drew
// (flow control, §6.4). A browser that cannot decode the server's H.264 asks for JPEG (set_video).
(() => {
  const params = new URLSearchParams(location.search);
  const canvas = document.getElementById('video');
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  const overlay = document.getElementById('overlay');
  const promptBox = document.getElementById('prompt');
  const messageLine = document.getElementById('message');
  const plot = document.getElementById('plot');
  if (params.get('prompt')) promptBox.value = params.get('prompt');

  const test = window.fastarTest = {
    framesDrawn: 0, framesSkipped: 0, lastFrameIndex: -1, lastChunk: null, stats: null, ready: null,
    keysSent: 0, latencies: [], promptApplied: [], errors: [], closed: null, frameLog: [], ws: null,
    video: null, fallback: null, h264Decoded: 0, mediaKinds: { jpeg: 0, h264: 0 },
  };
  let fps = 16, chunkFrames = 3, queue = [], consumed = 0, nextDue = 0, seq = 0;
  let action = '.', held = [], paused = false;
  const keyChanges = new Map();   // action seq → time the key change was sent
  const history = [];             // {t, fps, kvBytes} for the plot

  const ws = test.ws = new WebSocket(`ws://${location.host}/v1/stream`);
  ws.binaryType = 'arraybuffer';
  const send = (message) => { if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message)); };

  // The codec is the server's (--codec) unless the address asks for one (?video=jpeg|h264).
  ws.onopen = () => send(Object.assign({ type: 'hello', v: 1, prompt: promptBox.value,
                                         seed: Number(params.get('seed') || 0), actions: true },
                                       params.get('video') ? { video: params.get('video') } : {}));
  ws.onclose = (e) => { test.closed = { code: e.code, reason: e.reason }; overlay.textContent = `closed (${e.code})`; };
  ws.onmessage = (event) => {
    if (typeof event.data !== 'string') return onMedia(event.data);
    const m = JSON.parse(event.data);
    if (m.type === 'ready') {
      test.ready = m; fps = m.fps; chunkFrames = m.chunk_frames;
      canvas.width = m.width; canvas.height = m.height;
      document.getElementById('source').textContent = `· ${m.source}: ${m.model} on ${m.device} · ${m.width}×${m.height} @ ${m.fps} fps`;
      setVideo(m.video, m.codec);
    } else if (m.type === 'video_changed') {
      setVideo(m.video, m.codec);
    } else if (m.type === 'chunk') {
      test.lastChunk = m; test.stats = m;
    } else if (m.type === 'prompt_applied') {
      test.promptApplied.push(m);
      messageLine.textContent = `prompt ${m.seq} applied at frame ${m.at_frame}` + (m.recache ? ` (re-cache ${m.recache_ms.toFixed(0)} ms)` : '');
    } else if (m.type === 'error') {
      test.errors.push(m); messageLine.textContent = (m.fatal ? 'error: ' : '') + m.message;
    } else if (m.type === 'bye') {
      messageLine.textContent = `server closed the session: ${m.reason}`;
    }
  };

  // Binary media: the 32-byte FAR1 header (kind 1: a JPEG; kind 2: an H.264 access unit, flags bit 0 =
  // key), then the payload (serving-spec.md §6.2). Each frame gets a queue entry in arrival order; its
  // `bitmap` (an ImageBitmap or a VideoFrame, both drawable and closable) arrives asynchronously, or
  // 'bad' for a frame that cannot be shown (it still counts as consumed, so acks keep flowing).
  function onMedia(buffer) {
    const view = new DataView(buffer);
    const kind = view.getUint8(4), key = (view.getUint8(5) & 1) === 1;
    const entry = { bitmap: null, frame: Number(view.getBigUint64(8, true)), chunk: view.getUint32(16, true),
                    actionSeq: view.getUint32(20, true), promptSeq: view.getUint32(24, true) };
    queue.push(entry);
    if (kind === 2) {
      test.mediaKinds.h264++;
      return feed({ entry, key, data: new Uint8Array(buffer, 32) });
    }
    test.mediaKinds.jpeg++;
    createImageBitmap(new Blob([buffer.slice(32)], { type: 'image/jpeg' })).then((b) => { entry.bitmap = b; },
      () => { entry.bitmap = 'bad'; });
  }

  // H.264 through WebCodecs. The server sends Annex-B with SPS/PPS in band at every keyframe, so the
  // decoder is configured without a `description`. States: none → checking (isConfigSupported) →
  // ready, or failed → the page asks the server for JPEG and goes on with it.
  let decoder = null, decoderState = 'none', waitingKey = true, decodeSeq = 0;
  const pendingH264 = [], decoding = new Map();  // decode timestamp → queue entry
  async function setVideo(video, codec) {
    test.video = video;
    if (video !== 'h264') { closeDecoder(); decoderState = 'none'; return; }
    if (decoderState === 'ready' || decoderState === 'checking') return;
    decoderState = 'checking';
    const config = { codec, optimizeForLatency: true };
    let why = null;
    if (params.get('webcodecs') === 'off') why = 'WebCodecs turned off by ?webcodecs=off';
    else if (typeof VideoDecoder === 'undefined') why = 'this browser has no WebCodecs VideoDecoder';
    else {
      try {
        const support = await VideoDecoder.isConfigSupported(config);
        if (!support.supported) why = `VideoDecoder cannot decode ${codec}`;
      } catch (e) { why = `VideoDecoder.isConfigSupported(${codec}) failed: ${e.message}`; }
    }
    if (why) return fallBack(why);
    try {
      decoder = new VideoDecoder({ output: onDecoded, error: (e) => fallBack(`H.264 decoding failed: ${e.message}`) });
      decoder.configure(config);
    } catch (e) { return fallBack(`VideoDecoder.configure(${codec}) failed: ${e.message}`); }
    decoderState = 'ready'; waitingKey = true;
    for (const p of pendingH264.splice(0)) feed(p);
  }
  function feed(p) {
    if (decoderState === 'checking' || decoderState === 'none') { pendingH264.push(p); return; }
    if (decoderState !== 'ready' || (waitingKey && !p.key)) { p.entry.bitmap = 'bad'; return; }
    waitingKey = false;
    const timestamp = decodeSeq++;
    decoding.set(timestamp, p.entry);
    try {
      decoder.decode(new EncodedVideoChunk({ type: p.key ? 'key' : 'delta', timestamp, data: p.data }));
    } catch (e) { decoding.delete(timestamp); p.entry.bitmap = 'bad'; fallBack(`VideoDecoder.decode failed: ${e.message}`); }
  }
  function onDecoded(frame) {
    const entry = decoding.get(frame.timestamp);
    decoding.delete(frame.timestamp);
    if (!entry) { frame.close(); return; }
    entry.bitmap = frame; test.h264Decoded++;
  }
  function closeDecoder() {
    if (decoder && decoder.state !== 'closed') { try { decoder.close(); } catch (e) { /* already closed */ } }
    decoder = null;
    for (const entry of decoding.values()) entry.bitmap = 'bad';
    decoding.clear();
    for (const p of pendingH264.splice(0)) p.entry.bitmap = 'bad';
  }
  // Never a blank page: without H.264 the session goes on in JPEG.
  function fallBack(why) {
    if (decoderState === 'failed') return;
    decoderState = 'failed';
    closeDecoder();
    test.fallback = why;
    messageLine.textContent = `H.264 not available here (${why}); switched to JPEG`;
    send({ type: 'set_video', video: 'jpeg' });
  }

  function draw(now) {
    requestAnimationFrame(draw);
    const period = 1000 / fps;
    if (queue.length && queue[0].bitmap && now >= nextDue) {
      // More than a chunk behind: skip to the newest decoded frames instead of fast-forwarding (§6.4).
      while (queue.length > 2 * chunkFrames && queue[1].bitmap) { drop(queue.shift()); test.framesSkipped++; }
      const f = queue.shift();
      if (f.bitmap !== 'bad') ctx.drawImage(f.bitmap, 0, 0);
      drop(f);
      test.framesDrawn++; test.lastFrameIndex = f.frame;
      test.frameLog.push({ frame: f.frame, actionSeq: f.actionSeq, promptSeq: f.promptSeq, t: now });
      if (test.frameLog.length > 400) test.frameLog.shift();
      for (const [s, sentAt] of keyChanges) if (s <= f.actionSeq) { test.latencies.push(now - sentAt); keyChanges.delete(s); }
      nextDue = Math.max(nextDue + period, now - period);
      scheduleAck();
    }
  }
  // Acks at most every 50 ms (the server caps client messages, --max-message-rate, default 50/s);
  // the last one is never held back for longer than that, so the lead cap always opens again.
  let lastAck = -1e9, ackTimer = null;
  function scheduleAck() {
    if (ackTimer !== null) return;
    const wait = Math.max(0, 50 - (performance.now() - lastAck));
    ackTimer = setTimeout(() => { ackTimer = null; lastAck = performance.now(); send({ type: 'ack', frames: consumed }); }, wait);
  }
  function drop(f) { consumed++; if (f.bitmap && f.bitmap !== 'bad') f.bitmap.close(); }
  requestAnimationFrame(draw);

  // Keys → one action, latest state: the most recently pressed key still held (§6.7).
  const keyActions = { ArrowUp: 'U', ArrowDown: 'D', ArrowLeft: 'L', ArrowRight: 'R', w: 'U', s: 'D', a: 'L', d: 'R',
                       W: 'U', S: 'D', A: 'L', D: 'R' };
  function sendAction(changed) {
    seq++;
    if (changed) keyChanges.set(seq, performance.now());
    send({ type: 'action', seq, a: action }); test.keysSent++;
  }
  function onKey(event, down) {
    if (event.target === promptBox) return;
    const a = keyActions[event.key];
    if (!a) return;
    event.preventDefault();
    held = held.filter((k) => k !== a);
    if (down) held.push(a);
    const next = held.length ? held[held.length - 1] : '.';
    if (next !== action) { action = next; sendAction(true); }
  }
  addEventListener('keydown', (e) => onKey(e, true));
  addEventListener('keyup', (e) => onKey(e, false));
  addEventListener('blur', () => { held = []; if (action !== '.') { action = '.'; sendAction(true); } });
  setInterval(() => { if (held.length) sendAction(false); }, 100);

  let promptSeq = 0;
  function switchPrompt() {
    send({ type: 'prompt', seq: ++promptSeq, text: promptBox.value, recache: document.getElementById('recache').checked });
    canvas.focus();
  }
  document.getElementById('switch').onclick = switchPrompt;
  promptBox.addEventListener('keydown', (e) => { if (e.key === 'Enter') switchPrompt(); });
  document.getElementById('pause').onclick = (e) => {
    paused = !paused; send({ type: 'pause', paused }); e.target.textContent = paused ? 'resume' : 'pause';
  };
  document.getElementById('reset').onclick = () => { send({ type: 'reset' }); canvas.focus(); };

  // The overlay and the plot, four times a second.
  const percentile = (values, p) => {
    if (!values.length) return NaN;
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
  };
  const mb = (bytes) => (bytes / 1048576).toFixed(2) + ' MB';
  let lastCount = 0, lastTime = performance.now();
  setInterval(() => {
    const now = performance.now();
    const shown = (test.framesDrawn - lastCount) * 1000 / (now - lastTime);
    lastCount = test.framesDrawn; lastTime = now;
    const c = test.lastChunk || {};
    const lat = test.latencies.slice(-50);
    history.push({ fps: shown, kv: c.kv_bytes || 0 });
    if (history.length > 240) history.shift();
    const show = (v, unit = '') => (v === undefined || Number.isNaN(v) ? '–' : v.toFixed(v < 10 ? 2 : 0) + unit);
    overlay.textContent =
      `frame ${test.lastFrameIndex}  ${paused ? '(paused)' : ''}\n` +
      `shown ${show(shown)} fps   generated ${show(c.fps)} fps\n` +
      `key→frame ${show(lat[lat.length - 1], ' ms')} (p50 ${show(percentile(lat, 0.5), ' ms')})\n` +
      `KV ${c.kv_bytes !== undefined ? mb(c.kv_bytes) : '–'}   density ${show(c.density)}\n` +
      `action ${action}   prompt #${c.prompt_seq ?? 0}   ${test.video || ''}`;
    const g = plot.getContext('2d');
    g.clearRect(0, 0, plot.width, plot.height);
    const maxFps = Math.max(1, ...history.map((h) => h.fps)), maxKv = Math.max(1, ...history.map((h) => h.kv));
    const line = (key, max, colour) => {
      g.strokeStyle = colour; g.beginPath();
      history.forEach((h, i) => { const x = i * plot.width / 240, y = plot.height - 4 - (h[key] / max) * (plot.height - 8);
                                  i ? g.lineTo(x, y) : g.moveTo(x, y); });
      g.stroke();
    };
    line('fps', maxFps, '#50fa7b'); line('kv', maxKv, '#ffb86b');
  }, 250);
  canvas.focus();
})();
)PAGE";

}  // namespace fastar::serve
