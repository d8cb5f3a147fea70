"""recengine.progress: a live bar on a terminal; on any other stream (a log file, a pipe) at most one status per
interval however many updates, and nothing for work shorter than the interval."""

import io
import re
import time

import pytest

from recengine import progress
from recengine.progress import NON_TTY_INTERVAL_S, progress_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _statuses(text: str) -> list[str]:
    """The statuses tqdm wrote: it starts each with a carriage return and ends the last with a newline."""
    return [s for s in re.split(r"[\r\n]", text) if s.strip()]


def test_many_quick_updates_on_a_log_stream_write_nothing():
    log = io.StringIO()
    with progress_bar(total=100_000, desc="train", unit="step", file=log) as bar:
        for i in range(100_000):
            bar.update(1)
            bar.set_postfix(loss=f"{1 / (i + 1):.4f}")  # a postfix forces no extra status
    for _ in progress_bar(range(100_000), desc="iterable", file=log, leave=False):
        pass
    assert _statuses(log.getvalue()) == []


def test_a_long_job_on_a_log_stream_writes_one_status_per_interval(monkeypatch):
    monkeypatch.setattr(progress, "NON_TTY_INTERVAL_S", 0.05)
    log = io.StringIO()
    start = time.perf_counter()
    with progress_bar(total=400, desc="train", file=log) as bar:
        for _ in range(400):
            time.sleep(0.001)
            bar.update(1)
            bar.set_postfix(step=bar.n)
    elapsed = time.perf_counter() - start
    statuses = _statuses(log.getvalue())
    assert 1 <= len(statuses) <= elapsed / 0.05 + 2, (len(statuses), elapsed)
    assert "400/400" in statuses[-1] and log.getvalue().endswith("\n")  # leave=True: the final status stays


def test_stderr_when_it_is_not_a_terminal(capsys):
    for _ in progress_bar(range(50_000), desc="sessions"):
        pass
    assert _statuses(capsys.readouterr().err) == []


def test_a_terminal_gets_tqdms_own_bar():
    tty = _Terminal()
    with progress_bar(total=10, desc="train", file=tty) as bar:
        assert bar.mininterval < NON_TTY_INTERVAL_S
        bar.update(10)
    assert "train" in tty.getvalue() and "10/10" in tty.getvalue()


@pytest.mark.parametrize("stream", [io.StringIO(), _Terminal()])
def test_disable_writes_nothing_anywhere(stream):
    for _ in progress_bar(range(1000), disable=True, file=stream):
        pass
    assert stream.getvalue() == ""


def test_a_closed_or_odd_stream_is_not_a_terminal():
    closed = io.StringIO()
    closed.close()
    assert not progress.is_terminal(closed) and not progress.is_terminal(object()) and not progress.is_terminal(None)
