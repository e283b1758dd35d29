"""A GPU stream hands its frames out on the device through DLPack (issue 17): torch.from_dlpack takes
them without a copy, and they equal the CPU stream's within the bf16 tolerance of the GPU DiT."""

from __future__ import annotations

import numpy as np
import pytest

import fastar


def cuda_or_skip():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (runs on the device: tools/device_check.sh python)")
    if not fastar.cuda_available():
        pytest.skip("this fastar build has no CUDA backend")
    return torch


def test_gpu_frames_are_a_device_dlpack_array_equal_to_the_cpu_frames(world_model):
    torch = cuda_or_skip()
    prompt, actions = "a red circle bounces . a blue square drifts left .", "RRRR"
    # policy=None: the model's fastar_defaults (a window: bounded, so the GPU preallocates nothing).
    with world_model.stream(prompt=prompt, policy=None, device="cuda", seed=3) as gpu, \
            world_model.stream(prompt=prompt, policy=None, seed=3) as cpu:
        for step in range(3):
            gpu.set_actions(actions)
            cpu.set_actions(actions)
            g, c = gpu.next_chunk(), cpu.next_chunk()
            frames = torch.from_dlpack(g.frames)
            assert frames.is_cuda and frames.dtype == torch.uint8
            assert frames.data_ptr() == g.frames_address  # the engine's device buffer, no copy
            assert tuple(frames.shape) == c.frames.shape
            # bf16 DiT on the GPU vs fp32 on the CPU: frames drift by a few 8-bit levels, more as the
            # rollout goes on; a different prompt or seed differs by tens of levels on average.
            diff = np.abs(frames.cpu().numpy().astype(np.int16) - c.frames.astype(np.int16))
            assert diff.mean() < 4.0, f"chunk {step}: mean |GPU - CPU| = {diff.mean():.2f} levels"
    # The comparison can fail: another seed is far off.
    with world_model.stream(prompt=prompt, policy=None, device="cuda", seed=4) as other:
        far = torch.from_dlpack(other.next_chunk().frames).cpu().numpy().astype(np.int16)
    with world_model.stream(prompt=prompt, policy=None, seed=3) as cpu:
        near = cpu.next_chunk().frames.astype(np.int16)
    assert np.abs(far - near).mean() > 4.0
