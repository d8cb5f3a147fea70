"""Progress bars only where a person watches them: a live tqdm bar on a terminal, nothing in a log file or a pipe
(stderr redirected), and nothing at all inside ``silenced(True)`` (the command line's --quiet).

    for epoch in progress_bar(range(epochs), desc="train", unit="epoch", disable=not progress):
        ...

Every progress bar of recengine goes through ``progress_bar``, so ``recengine compare > log 2>&1`` does not fill
the log with carriage-return refreshes; what a run did is in its step-by-step lines and its report.
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
from collections.abc import Iterable, Iterator
from typing import IO, Any

from tqdm import tqdm

__all__ = ["is_terminal", "progress_bar", "silenced"]

_SILENCED: contextvars.ContextVar[bool] = contextvars.ContextVar("recengine_progress_silenced", default=False)


def is_terminal(stream: IO[str] | None) -> bool:
    """Whether `stream` is an open terminal (a closed stream, or one without ``isatty``, is not)."""
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or the stream is closed
        return False


@contextlib.contextmanager
def silenced(quiet: bool = True) -> Iterator[None]:
    """Inside the block, every ``progress_bar`` is off when `quiet` (the command line's --quiet); the previous
    setting comes back after it. A context variable: other threads and tasks keep their own."""
    token = _SILENCED.set(bool(quiet) or _SILENCED.get())
    try:
        yield
    finally:
        _SILENCED.reset(token)


def progress_bar(
    iterable: Iterable | None = None, *, disable: bool = False, file: IO[str] | None = None, **kwargs: Any
) -> tqdm:
    """A tqdm bar (same arguments) written to `file` (default: stderr, read when called), live on a terminal and
    off (a tqdm that writes nothing and passes the iterable through) anywhere else, inside ``silenced(True)``, or
    with ``disable=True``."""
    stream = sys.stderr if file is None else file
    off = disable or _SILENCED.get() or not is_terminal(stream)
    return tqdm(iterable, disable=off, file=stream, **kwargs)
