"""Frames from Python equal the engine's reference frames bit for bit: the C++ tests' hashes of the
CLI's frames (tests/session/test_session.cpp) and the CLI's own PNGs."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

import fastar
from conftest import GOLDEN, PROMPT, fnv1a, find_cli
from png_decode import read_png


@pytest.fixture(scope="module")
def world_frames(world_model):
    """`fastar generate --prompt P --actions RRUULL --frames 6` from Python: the model's default
    policy (window 9, sink 0), actions queued with set_actions, the last chunk without its clean pass."""
    with world_model.stream(prompt=PROMPT, policy=None, seed=0) as s:
        s.set_actions("RRUULL")
        first = next(s)
        assert s.pending_actions == "ULL"
        second = s.next_chunk(commit=False)
        return np.concatenate([first.frames, second.frames])


def test_world_model_frames_equal_the_cli_hash(world_frames):
    assert world_frames.shape == (6, 64, 64, 3)
    assert fnv1a(world_frames) == 0x152547411707F7F3


def test_golden_model_frames_equal_the_cli_hash(golden_model):
    with golden_model.stream(policy=None) as s:
        frames = [s.next_chunk().frames, s.next_chunk(commit=False).frames]
    assert fnv1a(frames) == 0x65CA3511212F9461


@pytest.mark.skipif(find_cli() is None, reason="no fastar CLI built (build/fastar or $FASTAR_CLI)")
def test_golden_model_frames_equal_the_cli_pngs(golden_model, tmp_path):
    subprocess.run([str(find_cli()), "generate", "--model", str(GOLDEN), "--frames", "6", "--out", str(tmp_path)],
                   check=True, capture_output=True)
    cli = np.stack([read_png(tmp_path / f"frame_{i:06d}.png") for i in range(6)])
    with golden_model.stream(policy=None, frames=6) as s:
        python = np.concatenate([chunk.frames for chunk in s])
    np.testing.assert_array_equal(python, cli)


@pytest.mark.skipif(find_cli() is None, reason="no fastar CLI built (build/fastar or $FASTAR_CLI)")
def test_world_model_frames_equal_the_cli_pngs(world_frames, tmp_path):
    # One chunk keeps it short: its frames do not depend on what follows.
    subprocess.run([str(find_cli()), "generate", "--prompt", PROMPT, "--actions", "RRU", "--frames", "3", "--out",
                    str(tmp_path)], check=True, capture_output=True)
    cli = np.stack([read_png(tmp_path / f"frame_{i:06d}.png") for i in range(3)])
    np.testing.assert_array_equal(world_frames[:3], cli)


def test_reset_restarts_exactly(golden_model):
    with golden_model.stream(policy="tempcache", seed=7) as s:
        first = [c.frames.copy() for c in (s.next_chunk(), s.next_chunk())]
        s.reset(3)
        other = s.next_chunk().frames.copy()
        s.reset(7)
        again = [c.frames for c in (s.next_chunk(), s.next_chunk())]
    np.testing.assert_array_equal(np.concatenate(first), np.concatenate(again))
    assert not np.array_equal(first[0], other)


def test_iteration_stops_after_frames_rounded_up_to_chunks(golden_model):
    with golden_model.stream(policy="window", frames=7) as s:
        chunks = list(s)
    assert [c.index for c in chunks] == [0, 1, 2]
    assert [c.frame_start for c in chunks] == [0, 3, 6]
    assert all(c.frames.shape == (3, 16, 24, 3) and c.latent.shape == (4, 3, 16, 24) for c in chunks)
    assert chunks[-1].latent.dtype == np.float32 and chunks[-1].ms > 0


def test_stats_and_describe(golden_model):
    with golden_model.stream(policy="tempcache+annsa", frames=3) as s:
        assert "tempcache" in s.describe() and s.policy == "tempcache+annsa"
        chunk = next(s)
        keys = {"bytes", "cached_frames", "kv_density", "merges", "density", "recall", "cross_density", "cross_recall"}
        assert keys <= set(chunk.stats)
        assert chunk.stats["bytes"] > 0 and chunk.stats["cached_frames"] == 3
        assert 0 < chunk.stats["kv_density"] <= 1 and chunk.stats["merges"] >= 0
        assert chunk.stats["cross_density"] is None  # no AnnCA
        stats = s.stats()
        assert keys <= set(stats) and stats["frames_generated"] == 3 and stats["memory_in_use"] > 0


def test_prompt_switch_runs_on(world_model):
    with world_model.stream(prompt="a red circle bounces .", policy="window", window=3, chunk_frames=1) as s:
        s.next_chunk()
        s.set_prompt("a blue circle bounces .", recache=True, keep_sink=False)
        assert s.next_chunk().frame_start == 1


def test_world_render_is_the_ground_truth_renderer():
    frames = fastar.world.render(PROMPT, "RRUULL", seed=0, frames=6)
    assert frames.shape == (6, 64, 64, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames, fastar.world.render(PROMPT, "RRUULL", seed=0, frames=6))
    assert not np.array_equal(frames, fastar.world.render(PROMPT, "RRUULL", seed=1, frames=6))


def test_default_model_is_the_shipped_world_model(world_model):
    assert world_model.action_dim == 5 and world_model.has_text_encoder
    assert world_model.frame_size == (64, 64) and world_model.default_policy == "window"
