"""Progress bars that suit where they are written: a live tqdm bar on a terminal, and in a log file (stderr
redirected) at most one status every ``NON_TTY_INTERVAL_S`` seconds, nothing at all for work shorter than that.

    for epoch in progress_bar(range(epochs), desc="train", unit="epoch", disable=not progress):
        ...

Every progress bar of recengine goes through ``progress_bar``, so ``recengine compare > log 2>&1`` does not fill
the log with thousands of carriage-return refreshes per agent. tqdm does the throttling itself (``mininterval``,
``maxinterval`` and ``delay``); this module only picks the values.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import IO, Any

from tqdm import tqdm

__all__ = ["NON_TTY_INTERVAL_S", "is_terminal", "progress_bar"]

NON_TTY_INTERVAL_S = 10.0
"""seconds between two statuses written to a stream that is not a terminal (and before the first one)"""


def is_terminal(stream: IO[str] | None) -> bool:
    """Whether `stream` is an open terminal (a closed stream, or one without ``isatty``, is not)."""
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or the stream is closed
        return False


class _LogBar(tqdm):
    """tqdm for a stream that is not a terminal: a new postfix or description waits for the next refresh that
    ``mininterval`` allows instead of forcing one (tqdm's ``refresh=False``), so a caller setting the postfix
    every step still writes one status per interval."""

    def set_postfix(self, ordered_dict=None, refresh=True, **kwargs):
        super().set_postfix(ordered_dict, refresh=False, **kwargs)

    def set_postfix_str(self, s="", refresh=True):
        super().set_postfix_str(s, refresh=False)

    def set_description(self, desc=None, refresh=True):
        super().set_description(desc, refresh=False)

    def set_description_str(self, desc=None, refresh=True):
        super().set_description_str(desc, refresh=False)


def progress_bar(
    iterable: Iterable | None = None, *, disable: bool = False, file: IO[str] | None = None, **kwargs: Any
) -> tqdm:
    """A tqdm bar (same arguments) written to `file` (default: stderr, read when called). On a terminal it is
    tqdm's own; anywhere else its refreshes (new postfixes included) are at least ``NON_TTY_INTERVAL_S`` apart
    and it writes nothing before that much time has passed. ``disable=True`` turns it off wherever it goes."""
    stream = sys.stderr if file is None else file
    if disable or is_terminal(stream):
        return tqdm(iterable, disable=disable, file=stream, **kwargs)
    interval = max(float(kwargs.get("mininterval", 0.0)), NON_TTY_INTERVAL_S)
    kwargs["mininterval"] = interval
    kwargs["maxinterval"] = max(float(kwargs.get("maxinterval", 0.0)), interval)
    kwargs.setdefault("delay", interval)
    return _LogBar(iterable, file=stream, **kwargs)
