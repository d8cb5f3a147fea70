"""recengine.progress: a live bar on a terminal; nothing on any other stream (a log file, a pipe), nothing inside
``silenced(True)`` (--quiet), and the setting restored after the block."""

import io
import threading

import pytest

from recengine import progress
from recengine.progress import progress_bar, silenced


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_stream_gets_nothing_however_long_the_work():
    log = io.StringIO()
    with progress_bar(total=1000, desc="train", unit="step", file=log) as bar:
        for i in range(1000):
            bar.update(1)
            bar.set_postfix(loss=f"{1 / (i + 1):.4f}")
    assert list(progress_bar(range(5), file=log)) == [0, 1, 2, 3, 4]
    assert log.getvalue() == ""


def test_stderr_when_it_is_not_a_terminal(capsys):
    for _ in progress_bar(range(5000), desc="sessions"):
        pass
    assert capsys.readouterr().err == ""


def test_a_terminal_gets_tqdms_own_bar():
    tty = _Terminal()
    with progress_bar(total=10, desc="train", file=tty) as bar:
        bar.update(10)
    assert "train" in tty.getvalue() and "10/10" in tty.getvalue()


@pytest.mark.parametrize("stream", [io.StringIO(), _Terminal()])
def test_disable_writes_nothing_anywhere(stream):
    for _ in progress_bar(range(1000), disable=True, file=stream):
        pass
    assert stream.getvalue() == ""


def test_silenced_turns_off_a_terminal_bar_and_restores_it():
    tty = _Terminal()
    with silenced(True):
        for _ in progress_bar(range(10), desc="quiet", file=tty):
            pass
        with silenced(False):  # an inner block cannot turn a silenced run loud again
            for _ in progress_bar(range(10), desc="still", file=tty):
                pass
    assert tty.getvalue() == ""
    for _ in progress_bar(range(10), desc="loud", file=tty):
        pass
    assert "loud" in tty.getvalue()


def test_silenced_is_local_to_its_thread():
    seen = []
    with silenced(True):
        thread = threading.Thread(target=lambda: seen.append(progress._SILENCED.get()))
        thread.start()
        thread.join()
    assert seen == [False]


def test_a_closed_or_odd_stream_is_not_a_terminal():
    closed = io.StringIO()
    closed.close()
    assert not progress.is_terminal(closed) and not progress.is_terminal(object()) and not progress.is_terminal(None)
