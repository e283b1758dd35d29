"""Type stubs of fastar's compiled core (src/fastar/python). Use the `fastar` package, not this module."""

from typing import Any, Dict, List, Optional

import numpy as np
import numpy.typing as npt

class Model:
    """A model loaded once; any number of sessions share its weights."""

    @staticmethod
    def load(path: str, random_weights: Optional[int] = None) -> Model: ...
    @property
    def name(self) -> str: ...
    @property
    def has_text_encoder(self) -> bool: ...
    @property
    def action_dim(self) -> int: ...
    @property
    def latent_height(self) -> int: ...
    @property
    def latent_width(self) -> int: ...
    @property
    def channels(self) -> int: ...
    @property
    def num_layers(self) -> int: ...
    @property
    def dim(self) -> int: ...
    @property
    def default_policy(self) -> str: ...

class Chunk:
    """One chunk of a stream: its frames, its clean latent and the policy's statistics."""

    @property
    def index(self) -> int:
        """Chunks since the start of the stream (or its last reset)."""
    @property
    def frame_start(self) -> int:
        """Latent frame index of the chunk's first frame."""
    @property
    def ms(self) -> float:
        """Wall time of the chunk in milliseconds."""
    @property
    def stats(self) -> Dict[str, Any]:
        """bytes, cached_frames, kv_density, merges, density, recall, cross_density, cross_recall
        (None where the policy has no such statistic)."""
    @property
    def frames(self) -> Any:
        """[frames, height, width, 3] uint8 RGB over the engine's buffer (no copy; the array keeps it alive):
        a numpy array for a CPU stream; for a GPU stream a DLPack array on the device
        (``torch.from_dlpack(chunk.frames)``), complete when the chunk is returned."""
    @property
    def latent(self) -> npt.NDArray[np.float32]:
        """[channels, frames, height, width], the clean latent x0 (no copy)."""
    @property
    def frames_address(self) -> int:
        """Address of the engine's frame buffer that `frames` points into."""
    def __len__(self) -> int: ...

class Session:
    """A fastar::Session (use fastar.Model.stream)."""

    def __init__(
        self,
        model: Model,
        prompt: Optional[str],
        policy: str = "",
        options: Dict[str, str] = {},
        device: str = "cpu",
        seed: int = 0,
        chunk_frames: int = 3,
        frames: int = 0,
        schedule: str = "self-forcing",
        steps: List[float] = [],
        threads: int = 0,
    ) -> None: ...
    def next_chunk(self, actions: str = "", commit: bool = True) -> Chunk: ...
    def set_prompt(self, text: Optional[str], recache: bool = True, keep_sink: bool = False) -> None: ...
    def reset(self, seed: int) -> None: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    def stats(self) -> Dict[str, Any]: ...
    def describe(self) -> str: ...
    def report(self) -> str: ...
    def stats_json(self) -> str: ...
    @property
    def policy(self) -> str: ...
    @property
    def chunk_frames(self) -> int: ...
    @property
    def frames_generated(self) -> int: ...
    @property
    def frame_capacity(self) -> int: ...
    @property
    def memory_in_use(self) -> int: ...

def live_sessions() -> int:
    """Sessions alive in this process (open, not yet freed)."""

def policy_options() -> List[str]:
    """The names of the policy options (the CLI's --name without dashes)."""

def is_policy_option(name: str) -> bool: ...
def cuda_available() -> bool: ...
def render_world(prompt: str, actions: str, seed: int, frames: int) -> npt.NDArray[np.uint8]: ...
