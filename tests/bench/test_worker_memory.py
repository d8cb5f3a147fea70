"""recengine.bench.worker_memory: the memory figures it reads from /proc, and the child processes it finds."""

import os
import subprocess
import sys

from recengine.bench import worker_memory


def test_smaps_rollup_reads_rss_pss_uss_of_a_process():
    mem = worker_memory.smaps_rollup(os.getpid())
    assert set(mem) == {"rss", "pss", "uss"}
    assert 0 < mem["uss"] <= mem["pss"] <= mem["rss"]


def test_children_lists_the_processes_a_process_started():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in worker_memory.children(os.getpid())
    finally:
        child.kill()
        child.wait()
    assert child.pid not in worker_memory.children(os.getpid())
