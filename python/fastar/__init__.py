"""fastar: stream video from autoregressive Wan2.1 diffusion transformers, chunk after chunk.

    import fastar
    model = fastar.load()                       # the shipped world model (models/world-small)
    with model.stream(prompt="a red circle bounces .", policy="tempcache+annsa", frames=12) as s:
        s.set_actions("RRRUUU")                 # one action per frame: . U D L R
        for chunk in s:
            chunk.frames                        # numpy.uint8 [F, H, W, 3], no copy
                                                # (device="cuda": a DLPack array on the GPU)

The engine is C++ (fastar::Session, docs/session.md); this package is a thin front end over it
(docs/python.md).
"""

from fastar._fastar import Chunk, cuda_available, live_sessions, policy_options
from fastar._eval import evaluate as eval, psnr  # noqa: A001 (fastar.eval, as the CLI's `fastar eval`)
from fastar._model import Model, default_model_path, load
from fastar._stream import Stream
from fastar import world

__version__ = "0.1.0"

__all__ = [
    "Chunk",
    "cuda_available",
    "Model",
    "Stream",
    "default_model_path",
    "eval",
    "live_sessions",
    "load",
    "policy_options",
    "psnr",
    "world",
    "__version__",
]
