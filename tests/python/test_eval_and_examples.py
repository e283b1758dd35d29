"""fastar.eval (policies against the dense rollout, in process) and the two examples, run as a user would."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastar
from conftest import PROMPT, REPO


def test_eval_compares_each_policy_with_the_dense_frames(world_model):
    rows = fastar.eval(world_model, ["tempcache"], prompt=PROMPT, actions="RRRUUU", frames=6, seed=1)
    assert [r["policy"] for r in rows] == ["dense", "tempcache"]
    dense, tempcache = rows
    assert dense["psnr"] == math.inf and dense["frames"].shape == tempcache["frames"].shape == (6, 64, 64, 3)
    # TempCache merges keys: its frames differ from dense (a finite PSNR), but only a little.
    assert 15.0 < tempcache["psnr"] < math.inf
    assert tempcache["psnr"] == pytest.approx(fastar.psnr(tempcache["frames"], dense["frames"]))
    assert tempcache["kv_bytes"] <= dense["kv_bytes"]
    # The reference is rolled out with the same seed and actions: another seed is far from it.
    other = fastar.eval(world_model, [], prompt=PROMPT, actions="RRRUUU", frames=6, seed=2)[0]["frames"]
    assert fastar.psnr(other, dense["frames"]) < tempcache["psnr"]


def test_eval_bad_arguments(world_model):
    with pytest.raises(ValueError, match="frames must be a positive int"):
        fastar.eval(world_model, ["window"], frames=0)
    with pytest.raises(ValueError, match="policies is a list"):
        fastar.eval(world_model, "window")
    with pytest.raises(ValueError, match="shapes differ"):
        fastar.psnr(np.zeros((1, 2, 2, 3), np.uint8), np.zeros((1, 2, 3, 3), np.uint8))


def run_example(*args: str) -> str:
    result = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")})
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_compare_policies_example_runs():
    out = run_example("examples/compare_policies.py", "--frames", "3", "--policies", "window")
    lines = [l for l in out.splitlines() if l.startswith(("dense", "window"))]
    assert [l.split()[0] for l in lines] == ["dense", "window"], out
    assert lines[0].split()[1] == "inf"


def test_stream_world_example_writes_its_video(tmp_path: Path):
    out = tmp_path / "world.gif"
    run_example("examples/stream_world.py", "--frames", "3", "--out", str(out))
    written = list(tmp_path.iterdir())
    assert written, "the example wrote nothing"
    assert any(p.stat().st_size > 0 for p in written if p.is_file()) or any(p.is_dir() and any(p.iterdir()) for p in written)
