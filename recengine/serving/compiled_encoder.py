"""The serving encoder compiled ahead of time: InferenceEncoder -> torch.export -> AOTInductor -> one shared library.

    rec = Recommender.load("runs/sasrec", compile=True)      # first load compiles (tens of seconds), then cached
    rec.recommend([[12, 7, 301]], k=10)                       # the encoder runs as compiled C++ kernels

Why: eagerly, the encoder is a few dozen aten calls, each with its Python and dispatcher overhead, and the
elementwise steps (LayerNorms, GELU, residual adds, the position embedding) each read and write the whole
activation. AOTInductor fuses them into generated C++ loops around the matmuls and the attention, and the
compiled program runs without Python between the kernels, which at batch 1 is most of the time.

What is compiled: the Recommender's InferenceEncoder with its item table lookup written in plain tensor ops
(the int8 / bfloat16 rows dequantized in the generated code: ``codes * scale + bias``), the batch
(1..MAX_BATCH) and window length (1..max_len) dynamic. The catalog top-k with each user's exclusions stays
recengine's fused kernel (its k and exclusion lists vary per request). The compiled encoder computes the same
function as the eager one; its float32 results differ only by rounding (fused loops sum in another order).

The package is cached on disk under a key of everything that determines it: the encoder's weights and table
(their bytes), the table dtype, torch's version and recengine's; a second load with the same model and
versions reads the cached package (well under a second). Default directory: the recengine cache
(``$RECENGINE_CACHE``, else ``~/.cache/recengine``), sub-directory ``compiled``.
"""

from __future__ import annotations

import hashlib
import os

import torch

from recengine.serving.encoder import InferenceEncoder
from recengine.serving.export import export_encoder

#: the sub-directory of the recengine cache that holds compiled packages
CACHE_SUBDIR = "compiled"


def cache_key(encoder: InferenceEncoder) -> str:
    """A hex digest of what determines the compiled package: every buffer's name, dtype, shape and bytes, the
    table dtype, torch's and recengine's versions."""
    from recengine._version import __version__

    h = hashlib.sha256()
    h.update(f"torch {torch.__version__} recengine {__version__} {encoder.table.dtype_name}".encode())
    for name, buf in sorted(encoder.state_dict().items()):
        t = buf.detach().cpu().contiguous()
        h.update(f"{name} {t.dtype} {tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:32]


def default_cache_dir() -> str:
    """``<recengine cache>/compiled``."""
    from recengine.data.wheel_cache import cache_dir

    return os.path.join(cache_dir(), CACHE_SUBDIR)


def compile_encoder(encoder: InferenceEncoder, *, cache_dir: str | os.PathLike | None = None):
    """A callable ``(window (B, L) int64, lengths (B,) int64) -> states (B, D)``: `encoder` AOT-compiled, from the
    package cache when it holds this encoder's key, else compiled now and stored there (atomically: a
    concurrent compile of the same key never leaves a torn file)."""
    from recengine._atomic import atomic_path

    if encoder.position_embedding.device.type != "cpu":
        raise ValueError("encoder: AOT compilation is implemented for CPU encoders only")
    directory = os.fspath(cache_dir) if cache_dir is not None else default_cache_dir()
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"encoder-{cache_key(encoder)}.pt2")
    if not os.path.isfile(path):
        program = export_encoder(encoder, pure_lookup=True)
        with atomic_path(path) as tmp:
            torch._inductor.aoti_compile_and_package(program, package_path=tmp)
    return torch._inductor.aoti_load_package(path)
