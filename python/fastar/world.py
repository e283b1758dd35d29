"""The procedural world the shipped world model was trained on (docs/world.md): its ground truth."""

from __future__ import annotations

import numpy as np

from fastar import _fastar


def render(prompt: str, actions: str = "", seed: int = 0, frames: int = 12) -> np.ndarray:
    """The world's true frames for (prompt, actions, seed): numpy.uint8 [frames, 64, 64, 3].

    Args:
        prompt: objects in the world's vocabulary, e.g. "a red circle bounces . a blue square drifts left .".
        actions: the player's action per frame (. U D L R; shorter = none for the rest).
        seed: the world's seed (background and starting positions).
        frames: frames to draw.
    """
    return _fastar.render_world(prompt, actions, seed, frames)
