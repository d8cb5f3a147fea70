"""The device a Recommender runs on, checked against what this torch build and machine have."""

from __future__ import annotations

import torch

__all__ = ["checked_device"]


def checked_device(device: str | torch.device, name: str = "device") -> torch.device:
    """``device`` as a torch.device when this process can use it: "cpu", or "cuda"/"cuda:<i>" with a CUDA build and
    a GPU number i that exists. Anything else is a ValueError naming `name` and the devices there are, raised
    before any model is built or moved."""
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"{name}: expected a device string such as 'cpu' or 'cuda:0', got {type(device).__name__}")
    try:
        parsed = torch.device(device)
    except RuntimeError:
        raise ValueError(f"{name}: {device!r} is not a device; expected 'cpu', 'cuda' or 'cuda:<index>'") from None
    if parsed.type == "cpu":
        return parsed
    if parsed.type != "cuda":
        raise ValueError(f"{name}: {device!r}; this build serves on 'cpu' or 'cuda' only")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise ValueError(f"{name}: {device!r}, but this torch build or machine has no CUDA GPU (use 'cpu')")
    if parsed.index is not None and parsed.index >= count:
        raise ValueError(f"{name}: {device!r}, but this machine has {count} CUDA GPU(s): cuda:0..cuda:{count - 1}")
    return parsed
