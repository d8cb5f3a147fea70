"""Shared pieces of the bad-input suite: a case table row, snapshots of stored state, and broken files."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class BadInput:
    """One bad input: the call, the exception it must raise and the words its message must hold."""

    id: str
    call: Callable[[], object]
    error: type[BaseException]
    names: tuple[str, ...]


def case(id: str, call: Callable[[], object], error: type[BaseException], *names: str):
    """A pytest.param of a BadInput, with `id` as the test id."""
    import pytest

    return pytest.param(BadInput(id, call, error, names), id=id)


def tensors_digest(*tensors: torch.Tensor) -> str:
    """A digest of the tensors' bytes: equal digests mean nothing was written."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def files_digest(directory: str) -> dict[str, str]:
    """{name: digest of the bytes} of every file under `directory`."""
    out = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, directory)] = hashlib.sha256(f.read()).hexdigest()
    return out


def raw_file(data: bytes) -> Callable[[str, bytes], None]:
    """A broken-file maker: writes `data` at the path, whatever the good file held."""

    def make(path: str, good: bytes) -> None:
        with open(path, "wb") as f:
            f.write(data)

    return make


def cut_file(n: int) -> Callable[[str, bytes], None]:
    """A broken-file maker: writes the good file's first `n` bytes (a truncated file)."""

    def make(path: str, good: bytes) -> None:
        with open(path, "wb") as f:
            f.write(good[:n])

    return make
