"""The integer side of the counter-based hash every backend of the policy family shares (plain Python; imports
nothing of recengine): the 32-bit mixing function's constants and the per-call seed key.

Sampling draws the uniform for (seed, row, item) from a hash of the three; every backend (the C++ kernels, the
Triton kernels, the plain-PyTorch reference) starts from the same 32-bit key of the caller's seed, ``seed_key``,
so the same seed gives the same draw everywhere.
"""

from __future__ import annotations

__all__ = ["MASK32", "MIX_MUL1", "MIX_MUL2", "mix32_int", "seed_key"]

MASK32 = 0xFFFFFFFF
#: the two multipliers of the 32-bit finaliser ("lowbias32": xorshift-multiply, 2 rounds)
MIX_MUL1 = 0x7FEB352D
MIX_MUL2 = 0x846CA68B


def mix32_int(x: int) -> int:
    """The 32-bit mixing function on a Python int (for the per-call seed key)."""
    x &= MASK32
    x ^= x >> 16
    x = (x * MIX_MUL1) & MASK32
    x ^= x >> 15
    x = (x * MIX_MUL2) & MASK32
    x ^= x >> 16
    return x


def seed_key(seed: int) -> int:
    """Fold a (up to 64-bit) integer seed into the 32-bit key all backends start from."""
    seed = int(seed) & 0xFFFFFFFFFFFFFFFF
    return mix32_int((seed & MASK32) ^ mix32_int(seed >> 32))
