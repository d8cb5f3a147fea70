"""Threads adding, sampling, updating priorities and saving one replay at once: no error, every saved file
loads as a consistent replay, the trees stay exact. (The sanitizer job runs this under ThreadSanitizer.)"""

from __future__ import annotations

import os
import threading
import time

import torch

from recengine.buffers import PrioritizedReplay

SECONDS = float(os.environ.get("RECENGINE_CONCURRENCY_SECONDS", "2"))


def test_add_sample_update_save_from_threads(tmp_path):
    replay = PrioritizedReplay(
        256,
        {
            "payload": ((4,), torch.float32),
            "checksum": ((), torch.float32),
            "reward": ((), torch.float32),
            "done": ((), torch.bool),
        },
        alpha=0.7,
        n_step=3,
    )
    errors: list[BaseException] = []
    stop = time.monotonic() + SECONDS
    path = str(tmp_path / "replay.safetensors")

    def run(body):
        def loop():
            try:
                while time.monotonic() < stop:
                    body()
            except BaseException as exc:  # collected and asserted on below
                errors.append(exc)

        return threading.Thread(target=loop)

    g_add = torch.Generator().manual_seed(0)

    def add():
        payload = torch.rand(16, 4, generator=g_add)
        replay.add(payload=payload, checksum=payload.sum(1), reward=torch.ones(16), done=torch.zeros(16).bool())

    g_sample = torch.Generator().manual_seed(1)

    def sample():
        if len(replay) == 0:
            return
        batch, idx, weights = replay.sample(32, 0.4, g_sample)
        assert torch.allclose(batch["payload"].sum(1), batch["checksum"]), "a half-written transition was sampled"
        assert bool(((weights > 0) & (weights <= 1)).all())
        replay.update_priorities(idx, torch.rand(32, generator=g_sample) + 0.01)

    def save():
        replay.save(path)
        loaded = PrioritizedReplay.load(path)
        leaves = loaded.leaf_priorities()
        assert abs(loaded.total_priority() - float(leaves.sum())) <= 1e-9 * max(1.0, float(leaves.sum()))

    threads = [run(add), run(sample), run(sample), run(save)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=SECONDS + 60)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors[:3]
    leaves = replay.leaf_priorities()
    assert abs(replay.total_priority() - float(leaves.sum())) <= 1e-9 * float(leaves.sum())
    assert sorted(os.listdir(tmp_path)) == ["replay.safetensors"]
