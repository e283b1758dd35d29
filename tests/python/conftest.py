"""Shared by the Python tests: where the repository's models and the CLI are, and the frames' hash."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import pytest

import fastar

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "model" / "golden" / "wan_tiny_original"  # 2 layers, 16x24 latents: fast
WORLD = REPO / "models" / "world-small"
PROMPT = "a red circle bounces . a blue square drifts left ."


def fnv1a(frames: Iterable[np.ndarray]) -> int:
    """FNV-1a over the frames' bytes, as tests/session/test_session.cpp hashes them."""
    h = 1469598103934665603
    prime, mask = 1099511628211, (1 << 64) - 1
    for f in frames:
        for b in np.ascontiguousarray(f).tobytes():
            h = ((h ^ b) * prime) & mask
    return h


def find_cli() -> Optional[Path]:
    """The `fastar` program: $FASTAR_CLI, the README's build/, or one on PATH."""
    for candidate in (os.environ.get("FASTAR_CLI"), REPO / "build" / "fastar", shutil.which("fastar")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def golden_model() -> fastar.Model:
    return fastar.load(GOLDEN)


@pytest.fixture(scope="session")
def world_model() -> fastar.Model:
    return fastar.load()  # the shipped one, found without a path
