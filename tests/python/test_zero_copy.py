"""Chunks hand the engine's buffers to numpy without a copy; the arrays keep them alive."""

from __future__ import annotations

import gc

import numpy as np


def test_frames_are_the_engines_buffer(golden_model):
    with golden_model.stream(policy=None) as s:
        chunk = s.next_chunk()
        frames = chunk.frames
        assert frames.__array_interface__["data"][0] == chunk.frames_address
        assert not frames.flags.owndata and frames.flags.c_contiguous
        assert frames.dtype == np.uint8 and frames.shape == (3, 16, 24, 3)
        # The same bytes through DLPack (what torch.from_dlpack takes).
        assert np.shares_memory(frames, np.from_dlpack(frames))
        assert np.from_dlpack(frames).__array_interface__["data"][0] == chunk.frames_address
        latent = chunk.latent
        assert not latent.flags.owndata and latent.dtype == np.float32


def test_arrays_outlive_the_chunk_and_the_stream(golden_model):
    with golden_model.stream(policy=None) as s:
        chunk = s.next_chunk()
        frames, expected = chunk.frames, chunk.frames.copy()
    del chunk, s
    gc.collect()
    np.testing.assert_array_equal(frames, expected)  # the capsule still holds the C++ buffer
    frames[0, 0, 0] = 7  # writable: the buffer is the array's alone now
    assert frames[0, 0, 0, 0] == 7


def test_torch_from_dlpack_shares_the_buffer(golden_model):
    import pytest

    torch = pytest.importorskip("torch")
    with golden_model.stream(policy=None) as s:
        chunk = s.next_chunk()
        tensor = torch.from_dlpack(chunk.frames)
        assert tensor.data_ptr() == chunk.frames_address
