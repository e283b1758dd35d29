"""fastar.load and Model: a model loaded once, shared by any number of streams."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Optional, Sequence, Union

from fastar import _fastar
from fastar._stream import Stream, policy_option_map

PathLike = Union[str, "os.PathLike[str]"]

_SHIPPED = ("models", "world-small")


def default_model_path() -> str:
    """The shipped world model: package data in an installed wheel, else a source checkout's
    models/world-small (found from this file upwards: a checkout or a CMake build tree inside one)."""
    here = Path(__file__).resolve().parent
    candidates = [here.joinpath(*_SHIPPED)] + [parent.joinpath(*_SHIPPED) for parent in here.parents]
    for candidate in candidates:
        if (candidate / "config.json").is_file():
            return str(candidate)
    raise FileNotFoundError(
        errno.ENOENT,
        "fastar: the shipped world model is not installed with this package and no source checkout "
        "holds models/world-small; pass a model folder: fastar.load(path)",
        str(here.joinpath(*_SHIPPED)),
    )


def _device_name(device: str) -> str:
    """'cpu', 'cuda' or 'cuda:0' (one GPU per process for now) -> the engine's name."""
    if not isinstance(device, str):
        raise TypeError(f"fastar: device must be a string ('cpu' or 'cuda'), got {type(device).__name__}")
    name = device.strip().lower()
    if name in ("cpu", "cuda", "cuda:0"):
        return name.split(":")[0]
    raise ValueError(f"fastar: unknown device {device!r}; choose 'cpu' or 'cuda' ('cuda:0')")


class Model:
    """A model loaded once (DiT weights and, for models that have one, the text encoder).

    Streams share its weights; it stays alive as long as any of its streams does. Make one with
    :func:`fastar.load`.
    """

    def __init__(self, handle: _fastar.Model, path: str, device: str) -> None:
        self._handle = handle
        self.path = path
        self.device = device

    @property
    def name(self) -> str:
        """The model's name (its folder or file)."""
        return self._handle.name

    @property
    def has_text_encoder(self) -> bool:
        """Whether text prompts work (the model folder has its own text encoder)."""
        return self._handle.has_text_encoder

    @property
    def action_dim(self) -> int:
        """Actions per frame the model is conditioned on (5 for world models: . U D L R; 0 = none)."""
        return self._handle.action_dim

    @property
    def frame_size(self) -> tuple[int, int]:
        """(height, width) of the latent frames (the pixel frames for the world models)."""
        return (self._handle.latent_height, self._handle.latent_width)

    @property
    def default_policy(self) -> str:
        """The policy the model runs when a stream names none (config.json fastar_defaults)."""
        return self._handle.default_policy

    def stream(
        self,
        prompt: Optional[str] = None,
        policy: Optional[str] = "tempcache+annsa",
        seed: int = 0,
        frames: Optional[int] = None,
        *,
        chunk_frames: int = 3,
        device: Optional[str] = None,
        threads: Optional[int] = None,
        schedule: str = "self-forcing",
        steps: Optional[Sequence[float]] = None,
        **policy_options: Union[str, int, float, bool, None],
    ) -> Stream:
        """Opens a stream: a session of the engine that generates chunk after chunk.

        Args:
            prompt: words of the model's vocabulary (models with a text encoder); None = no prompt
                (the all-zero embedding).
            policy: the cross-frame memory, ``base[+window][+annsa][+annca]`` with base dense,
                window, tempcache or arl2 (docs/session.md); None or "" = the model's default.
            seed: the noise seed.
            frames: latent frames to generate when iterating (rounded up to whole chunks);
                None = iterate forever. On the GPU it also sizes an unbounded policy's cache.
            chunk_frames: latent frames per chunk.
            device: "cpu" or "cuda"; None = the model's.
            threads: CPU threads of this stream (OpenMP); None = all cores.
            schedule: "self-forcing" or "rolling-forcing" (CPU; its own sink cache, no policy).
            steps: the denoising timesteps; None = the schedule's.
            **policy_options: the policy's options, the CLI's ``--name value`` with ``_`` for ``-``:
                ``window=9, sink=0, tempcache_threshold=0.9, annsa_bits=3, ann_layers="1-5,7"``;
                flags (``ann_stats``, ``tempcache_recall``) take True.

        Raises:
            ValueError: an unknown policy or option, a bad value, words the model does not know.
            MemoryError: the policy's memory does not fit on the device.
        """
        if frames is not None and (not isinstance(frames, int) or frames < 1):
            raise ValueError(f"fastar: frames must be a positive int or None, got {frames!r}")
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"fastar: seed must be a non-negative int, got {seed!r}")
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ValueError(f"fastar: threads must be a positive int or None, got {threads!r}")
        session = _fastar.Session(
            self._handle,
            prompt,
            policy or "",
            policy_option_map(policy_options),
            _device_name(device or self.device),
            seed,
            chunk_frames,
            frames or 0,
            schedule,
            [float(t) for t in steps] if steps is not None else [],
            threads or 0,
        )
        return Stream(self, session, frames=frames, seed=seed)

    def __repr__(self) -> str:
        return f"fastar.Model({self.name!r}, device={self.device!r})"


def load(path: Optional[PathLike] = None, device: str = "cpu", random_weights: Optional[int] = None) -> Model:
    """Loads a model once; its streams share the weights.

    Args:
        path: a model folder (config.json + safetensors) or a weights file; None = the shipped
            world model (models/world-small).
        device: the device its streams run on by default, "cpu" or "cuda".
        random_weights: a seed: the config alone, with deterministic random weights (benchmarks,
            smoke tests).

    Raises:
        FileNotFoundError: no such model folder or file.
        ValueError: a malformed config or checkpoint (the message names the file and what is wrong).
    """
    device = _device_name(device)
    resolved = default_model_path() if path is None else os.fspath(path)
    if not os.path.exists(resolved):
        raise FileNotFoundError(errno.ENOENT, "fastar.load: no model folder or file at this path", resolved)
    handle = _fastar.Model.load(resolved, random_weights)
    return Model(handle, resolved, device)
