"""Stream: one session of the engine, iterated chunk by chunk."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Iterator, Mapping, Optional, Union

from fastar import _fastar

if TYPE_CHECKING:
    from fastar._model import Model

_ACTIONS = set(".UDLRudlr")


def policy_option_map(options: Mapping[str, Union[str, int, float, bool, None]]) -> Dict[str, str]:
    """Python keywords -> the engine's option map: ``annsa_bits=3`` -> ``{"annsa-bits": "3"}``; a flag
    (True) is present with an empty value, False and None leave the option out."""
    out: Dict[str, str] = {}
    for key, value in options.items():
        name = key.replace("_", "-")
        if not _fastar.is_policy_option(name):
            known = ", ".join(n.replace("-", "_") for n in _fastar.policy_options())
            raise ValueError(f"fastar: unknown policy option {key!r}; the options are: {known}")
        if value is None or value is False:
            continue
        out[name] = "" if value is True else str(value)
    return out


def _check_actions(actions: str) -> str:
    if not isinstance(actions, str):
        raise TypeError(f"fastar: actions must be a string of . U D L R, got {type(actions).__name__}")
    bad = sorted(set(actions) - _ACTIONS)
    if bad:
        raise ValueError(f"fastar: unknown actions {''.join(bad)!r} in {actions!r}; one per frame: . none, U up, D down, L left, R right")
    return actions


class Stream:
    """A stream of chunks from one session of the engine (fastar::Session).

    Use it as a context manager and an iterator::

        with model.stream(prompt="a red circle bounces .", frames=12) as s:
            for chunk in s:
                ...

    Iteration runs until ``frames`` latent frames (or forever when None). The session's memory is
    freed by :meth:`close`, on leaving ``with``, and when the stream is garbage collected (at once
    for ``for chunk in model.stream(...): break``). A ``break`` out of a loop over a stream held in
    a variable keeps it open, so that it can be resumed (e.g. after :meth:`set_prompt`).

    The GIL is released while a chunk is generated; calls on one stream from several threads are
    serialised.
    """

    def __init__(self, model: "Model", session: _fastar.Session, frames: Optional[int], seed: int) -> None:
        self.model = model
        self._session = session
        self._frames = frames
        self._seed = seed
        self._pending = ""

    # -- the loop --------------------------------------------------------------------------------
    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __iter__(self) -> Iterator[_fastar.Chunk]:
        return self

    def __next__(self) -> _fastar.Chunk:
        if self._frames is not None and self._session.frames_generated >= self._frames:
            raise StopIteration
        return self.next_chunk()

    def next_chunk(self, actions: Optional[str] = None, commit: bool = True) -> _fastar.Chunk:
        """Generates the next chunk (the GIL is released meanwhile).

        Args:
            actions: world models: one action per frame of this chunk (. U D L R; missing = none);
                None = the next ones queued by :meth:`set_actions`.
            commit: False skips the clean pass that writes the chunk into the memory (a last
                chunk; the stream cannot continue until :meth:`reset`).
        """
        n = self._session.chunk_frames
        if actions is None:
            actions, rest = self._pending[:n], self._pending[n:]
        else:
            _check_actions(actions)
            rest = self._pending
        chunk = self._session.next_chunk(actions, commit)
        self._pending = rest
        return chunk

    # -- steering ----------------------------------------------------------------------------------
    def set_actions(self, actions: str) -> None:
        """Queues actions (world models), one per frame: the following chunks take theirs from the
        front of the queue (frames without one: none). Replaces what was still queued."""
        self._pending = _check_actions(actions)

    @property
    def pending_actions(self) -> str:
        """Actions queued by :meth:`set_actions` that no chunk has taken yet."""
        return self._pending

    def set_prompt(self, text: Optional[str], recache: bool = True, keep_sink: bool = False) -> None:
        """A new prompt from the next chunk on (LongLive's switch, docs/session.md).

        Args:
            text: the new prompt (None = no prompt).
            recache: rebuild the memory from the kept clean latents under the new prompt.
            keep_sink: with recache, the sink frames' entries stay as computed under the old prompt.

        Raises:
            ValueError: words the model does not know; the stream then runs on with the old prompt.
        """
        self._session.set_prompt(text, recache, keep_sink)

    def reset(self, seed: Optional[int] = None) -> None:
        """Back to frame 0 with empty memory and the same prompt; seed None = the current one.
        Queued actions are dropped."""
        seed = self._seed if seed is None else seed
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"fastar: seed must be a non-negative int, got {seed!r}")
        self._session.reset(seed)
        self._seed = seed
        self._pending = ""

    # -- what it is doing ----------------------------------------------------------------------------
    def stats(self) -> Dict[str, Any]:
        """The policy's memory and statistics now: bytes, cached_frames, kv_density, merges, density,
        recall, cross_density, cross_recall (None where the policy has no such statistic), plus
        frames_generated and memory_in_use (the process's resident set, or the GPU's used bytes)."""
        stats = self._session.stats()
        stats["frames_generated"] = self._session.frames_generated
        stats["memory_in_use"] = self._session.memory_in_use
        return stats

    def describe(self) -> str:
        """The resolved settings: model, device, policy and its options, schedule, sizes, seed."""
        return self._session.describe()

    def report(self) -> str:
        """The policies' end-of-run report ("" = nothing to say)."""
        return self._session.report()

    @property
    def policy(self) -> str:
        """The resolved policy's canonical name, e.g. "tempcache+annsa"."""
        return self._session.policy

    @property
    def chunk_frames(self) -> int:
        """Latent frames per chunk."""
        return self._session.chunk_frames

    @property
    def frames_generated(self) -> int:
        """Latent frames generated since the start or the last reset."""
        return self._session.frames_generated

    @property
    def seed(self) -> int:
        return self._seed

    # -- the end -------------------------------------------------------------------------------------
    def close(self) -> None:
        """Frees the session's memory (waits for a chunk in flight in another thread). Idempotent."""
        self._session.close()

    @property
    def closed(self) -> bool:
        return self._session.closed

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.frames_generated} frames, policy {self.policy}"
        return f"<fastar.Stream {self.model.name}: {state}>"
