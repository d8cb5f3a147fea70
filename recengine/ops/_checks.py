"""Input validation shared by the public ops of every family: one place, clear exceptions naming the argument.

Tensors: `check_tensor`, `check_same_device`. Options: `check_number`, `check_int`, `check_positive`,
`check_choice`. Wrong types raise TypeError, wrong values ValueError.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch

INDEX_DTYPES = (torch.int32, torch.int64)
FLOAT_DTYPES = (torch.float32,)


def check_tensor(
    name: str,
    t: object,
    *,
    dtypes: Iterable[torch.dtype] | None = None,
    ndim: int | None = None,
    device: torch.device | None = None,
    shape: tuple[int | None, ...] | None = None,
) -> None:
    """Raise TypeError/ValueError naming `name` unless `t` is a tensor with the given properties.

    `shape` may hold None for a free dimension.
    """
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    if dtypes is not None:
        dtypes = tuple(dtypes)
        if t.dtype not in dtypes:
            want = ", ".join(str(d).replace("torch.", "") for d in dtypes)
            raise TypeError(f"{name}: expected dtype {want}, got {str(t.dtype).replace('torch.', '')}")
    if ndim is not None and t.dim() != ndim:
        raise ValueError(f"{name}: expected {ndim} dimension(s), got shape {tuple(t.shape)}")
    if shape is not None:
        if t.dim() != len(shape) or any(s is not None and s != d for s, d in zip(shape, t.shape)):
            want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
            raise ValueError(f"{name}: expected shape {want}, got {tuple(t.shape)}")
    if device is not None and t.device != torch.device(device):
        raise ValueError(f"{name}: expected device {device}, got {t.device}")


def check_same_device(**tensors: torch.Tensor | None) -> torch.device:
    """All given (non-None) tensors on one device; returns it."""
    devices = {name: t.device for name, t in tensors.items() if t is not None}
    uniq = set(devices.values())
    if len(uniq) > 1:
        detail = ", ".join(f"{n}={d}" for n, d in devices.items())
        raise ValueError(f"all tensors must be on one device, got {detail}")
    return next(iter(uniq))


def check_positive(name: str, value: object, *, integer: bool = False) -> None:
    """A number (an int when `integer`) strictly above 0; NaN is rejected."""
    if integer and (isinstance(value, bool) or not isinstance(value, int)):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if not integer and not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    if not value > 0 or value != value:
        raise ValueError(f"{name}: must be > 0, got {value}")


def check_number(
    name: str, value: object, *, minimum: float | None = None, exclusive: bool = False, maximum: float | None = None
) -> float:
    """A finite real number (not a bool), at least `minimum` (above it when `exclusive`) and at most `maximum`;
    returns it as float.

    TypeError for anything that is not an int or a float, ValueError for NaN, an infinity or a value
    out of range, each naming `name`.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    if minimum is not None and (value < minimum or (exclusive and value == minimum)):
        raise ValueError(f"{name}: must be {'>' if exclusive else '>='} {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name}: must be <= {maximum}, got {value}")
    return float(value)


def check_int(name: str, value: object, *, minimum: int | None = None) -> int:
    """An int (not a bool) of at least `minimum`; TypeError / ValueError naming `name` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value}")
    return value


def check_choice(name: str, value: object, choices: Sequence[str]) -> str:
    """One of the strings `choices`; TypeError for a non-str, ValueError naming the choices otherwise."""
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected a str, got {type(value).__name__}")
    if value not in choices:
        raise ValueError(f"{name}: expected one of {tuple(choices)}, got {value!r}")
    return value
