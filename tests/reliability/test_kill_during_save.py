"""A saving process killed (SIGKILL) at random moments: the previous file still loads, and the next save
leaves no orphaned temporary file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from recengine import checkpoint

_SAVER = """
import sys, torch
from recengine import checkpoint
path = sys.argv[1]
print("ready", flush=True)
step = 1
while True:
    checkpoint.write(path, {"w": torch.full((1 << 21,), float(step))}, "model", {"step": str(step)})
    step += 1
"""


def _start_saver(path: str) -> subprocess.Popen:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.Popen([sys.executable, "-c", _SAVER, path], stdout=subprocess.PIPE, cwd=root)
    assert proc.stdout.readline().strip() == b"ready"
    return proc


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_killed_saves_leave_the_previous_file_and_no_orphan_after_the_next_save(tmp_path):
    path = str(tmp_path / "state.safetensors")
    checkpoint.write(path, {"w": torch.zeros(1 << 21)}, "model", {"step": "0"})
    rng = np.random.default_rng(15)
    for _ in range(6):
        proc = _start_saver(path)
        time.sleep(float(rng.uniform(0.0, 0.4)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        tensors, meta = checkpoint.read(path)  # the last complete save, whichever it was
        w = tensors["w"]
        assert w.shape == (1 << 21,) and bool((w == float(meta["step"])).all())
        checkpoint.write(path, {"w": torch.full((1 << 21,), -1.0)}, "model", {"step": "-1"})
        assert sorted(os.listdir(tmp_path)) == ["state.safetensors"]
