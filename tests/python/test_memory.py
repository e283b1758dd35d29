"""Every way out of a stream frees its session: close(), leaving `with`, a `break` out of a loop over
a temporary stream, garbage collection; and 50 streams abandoned mid-stream leave the process's
resident memory where it was (within 5%)."""

from __future__ import annotations

import gc

import fastar


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def abandon(model, way: int) -> None:
    if way == 0:  # close()
        s = model.stream(policy="tempcache")
        s.next_chunk()
        s.close()
        assert s.closed
    elif way == 1:  # leaving `with` mid-stream
        with model.stream(policy="dense") as s:
            for chunk in s:
                break
        assert s.closed
    elif way == 2:  # break out of a loop over a temporary stream
        for chunk in model.stream(policy="window", window=3):
            break
        del chunk
    else:  # garbage: a dropped stream and the chunk that outlived it
        s = model.stream(policy="dense+annsa")
        chunk = s.next_chunk()
        del s, chunk


def test_every_way_out_frees_the_session(golden_model):
    base = fastar.live_sessions()
    for way in range(4):
        abandon(golden_model, way)
        assert fastar.live_sessions() == base, f"way {way}"


def test_abandoned_streams_free_their_memory(golden_model):
    for way in range(8):  # warm-up: allocator pools, OpenMP threads, lazy pages
        abandon(golden_model, way % 4)
    gc.collect()
    before = rss_bytes()
    for cycle in range(50):
        abandon(golden_model, cycle % 4)
    gc.collect()
    after = rss_bytes()
    assert fastar.live_sessions() == 0
    assert after <= before * 1.05, f"RSS {before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB after 50 streams"


def test_closed_stream_refuses_work(golden_model):
    import pytest

    s = golden_model.stream(policy=None)
    s.close()
    s.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        s.next_chunk()
