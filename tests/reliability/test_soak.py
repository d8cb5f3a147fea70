"""Soak: interleaved training steps (the large model and fused embedding tables), replay adds, samples and
priority updates, checkpoint and replay saves and reloads, for RECENGINE_SOAK_SECONDS (default 600), with the
resident memory sampled. After a warm-up (the first tenth of the run) the resident memory may not grow by more
than SOAK_GROWTH_BOUND bytes, and no step may fail. Run with ``python -m pytest -m soak tests/reliability``."""

from __future__ import annotations

import os
import time

import pytest
import torch

from recengine.buffers import PrioritizedReplay
from recengine.data import make_synthetic
from recengine.nn.embedding_tables import EmbeddingTables, TableSpec
from recengine.optim import RowwiseAdagrad
from recengine.train import SASRecConfig, model_from_data, sasrec_checkpoint

SOAK_SECONDS = float(os.environ.get("RECENGINE_SOAK_SECONDS", "600"))
SOAK_GROWTH_BOUND = 64 * 2**20
"""resident memory growth allowed after the warm-up: the allocator's slack, not a leak per step"""


def _resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.soak
@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc to read resident memory")
def test_soak_interleaved_work_holds_memory_and_never_fails(tmp_path):
    gen = torch.Generator().manual_seed(0)
    data = make_synthetic(200, 300, seed=0)
    cfg = SASRecConfig(dim=32, max_len=16, num_layers=1, num_heads=2, seed=0)
    torch.manual_seed(0)
    model = model_from_data(data, cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    tables = EmbeddingTables(
        [TableSpec("user", 5000, 16), TableSpec("item", 20000, 16)], optimizer=RowwiseAdagrad(0.05), seed=0
    )
    replay = PrioritizedReplay(
        4096,
        {
            "state": ((16,), torch.float32),
            "action": ((), torch.int64),
            "reward": ((), torch.float32),
            "done": ((), torch.bool),
        },
        n_step=3,
    )
    model_path, replay_path = str(tmp_path / "model.safetensors"), str(tmp_path / "replay.safetensors")

    start = time.monotonic()
    warm_until = start + SOAK_SECONDS / 10
    baseline, samples, step, saves = None, [], 0, 0
    while time.monotonic() - start < SOAK_SECONDS:
        step += 1
        x = torch.randint(0, data.num_items, (16, cfg.max_len), generator=gen)
        loss = model.loss(x[:, :-1], x[:, 1:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        assert torch.isfinite(loss)

        ids = torch.randint(0, 5000, (64,), generator=gen)
        out = tables(torch.cat([ids, ids % 20000]), torch.arange(0, 129, dtype=torch.int64))
        out.pow(2).mean().backward()

        replay.add(
            state=torch.randn(32, 16, generator=gen),
            action=torch.randint(0, 300, (32,), generator=gen),
            reward=torch.rand(32, generator=gen),
            done=torch.rand(32, generator=gen) < 0.1,
        )
        batch, idx, _ = replay.sample(64, 0.4, gen)
        replay.update_priorities(idx, batch["n_reward"].abs() + 0.01)

        if step % 20 == 0:
            saves += 1
            sasrec_checkpoint.save_model(model_path, model, cfg, data.name)
            model, _ = sasrec_checkpoint.load_model(model_path)
            opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
            replay.save(replay_path)
            replay = PrioritizedReplay.load(replay_path)
            assert sorted(os.listdir(tmp_path)) == ["model.safetensors", "replay.safetensors"]
        if step % 5 == 0:
            now = time.monotonic()
            samples.append((now - start, _resident_bytes()))
            if baseline is None and now >= warm_until:
                baseline = samples[-1][1]
    assert baseline is not None and saves >= 1, f"only {step} steps in {SOAK_SECONDS}s"
    peak_after = max(rss for t, rss in samples if t >= warm_until - start)
    growth = peak_after - baseline
    print(
        f"soak: {step} steps, {saves} save/reload cycles in {SOAK_SECONDS:.0f}s, "
        f"resident {baseline / 2**20:.0f} MiB after warm-up, "
        f"growth {growth / 2**20:.1f} MiB (bound {SOAK_GROWTH_BOUND / 2**20:.0f} MiB)"
    )
    assert growth <= SOAK_GROWTH_BOUND
