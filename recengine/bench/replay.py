"""Replay family workloads: W3 (prioritized replay add and sample+update) and W4 (a full DQN update step).

W3 runs on the host whatever the device (the replay lives in CPU memory). W4 runs on `device`.
"""

from __future__ import annotations

import torch

from recengine.bench import RECENGINE, Case, Workload

W3_REFERENCE = "reference: NumPy sum-tree"
W3_REFERENCE_FAST = "reference: NumPy sum-tree, no per-level unique"
W4_REFERENCE = "reference: plain PyTorch (full logits)"
#: on CUDA the recengine W4 step is the captured, sync-free DQNStep; the eager op-by-op step is then this one
W4_EAGER = "reference: recengine ops, eager step"


def _w3_fields(history: int) -> dict:
    return {
        "state": ((history,), torch.int64),
        "action": ((), torch.int64),
        "reward": ((), torch.float32),
        "next_state": ((history,), torch.int64),
        "done": ((), torch.bool),
    }


def _w3_rows(n: int, num_items: int, history: int, g: torch.Generator) -> dict:
    return dict(
        state=torch.randint(0, num_items, (n, history), generator=g),
        action=torch.randint(0, num_items, (n,), generator=g),
        reward=torch.rand(n, generator=g),
        next_state=torch.randint(0, num_items, (n, history), generator=g),
        done=torch.rand(n, generator=g) < 0.05,
    )


def _w3_row_bytes(history: int) -> int:
    return 2 * history * 8 + 8 + 4 + 1


def _w3_replays(capacity: int, history: int, fill: bool):
    from recengine.buffers import PrioritizedReplay
    from recengine.reference.replay import PrioritizedReplayReference

    fields = _w3_fields(history)
    ours = PrioritizedReplay(capacity, fields, alpha=0.6)
    ref = PrioritizedReplayReference(capacity, fields, alpha=0.6)
    fast = PrioritizedReplayReference(capacity, fields, alpha=0.6, unique_levels=False)
    if fill:
        g = torch.Generator().manual_seed(0)
        chunk = 1 << 16
        for start in range(0, capacity, chunk):
            rows = _w3_rows(min(chunk, capacity - start), 65536, history, g)
            ours.add(**rows)
            ref.add(**rows)
            fast.add(**rows)
        # spread the priorities so the trees are not uniform
        prio = torch.rand(capacity, generator=g, dtype=torch.float64) * 10 + 0.01
        everything = torch.arange(capacity)
        ours.update_priorities(everything, prio)
        ref.update_priorities(everything, prio)
        fast.update_priorities(everything, prio)
    return ours, ref, fast


def _w3_add(capacity: int, history: int, batch: int) -> Workload:
    def build():
        ours, ref, fast = _w3_replays(capacity, history, fill=False)
        rows = _w3_rows(batch, 65536, history, torch.Generator().manual_seed(1))
        nbytes = batch * _w3_row_bytes(history)  # written once
        return {
            RECENGINE: Case(fn=lambda: ours.add(**rows), bytes=2 * nbytes, items=batch),
            W3_REFERENCE: Case(fn=lambda: ref.add(**rows), bytes=2 * nbytes, items=batch),
            W3_REFERENCE_FAST: Case(fn=lambda: fast.add(**rows), bytes=2 * nbytes, items=batch),
        }

    return Workload(
        f"W3 add {batch} (capacity 2^{capacity.bit_length() - 1})",
        (RECENGINE, W3_REFERENCE, W3_REFERENCE_FAST),
        build,
        note="items/s = transitions added per second; bytes = rows read + written",
    )


def _w3_sample_update(capacity: int, history: int, batch: int, beta: float) -> Workload:
    def build():
        ours, ref, fast = _w3_replays(capacity, history, fill=True)
        g_ours, g_ref, g_fast = (torch.Generator().manual_seed(2) for _ in range(3))
        prio = torch.rand(batch, generator=torch.Generator().manual_seed(3)) + 0.01

        def step(replay, g):
            _, indices, _ = replay.sample(batch, beta, g)
            replay.update_priorities(indices, prio)

        # useful bytes: the sampled rows gathered (read + write); the real bound is memory latency
        # (B random rows and B tree descents and ascents of depth log2(capacity))
        nbytes = 2 * batch * (_w3_row_bytes(history) + 4)
        return {
            # steady-state throughput: 300 untimed calls bring the trees back into cache after filling
            RECENGINE: Case(fn=lambda: step(ours, g_ours), bytes=nbytes, items=1, warmup=300),
            W3_REFERENCE: Case(fn=lambda: step(ref, g_ref), bytes=nbytes, items=1, warmup=300),
            W3_REFERENCE_FAST: Case(fn=lambda: step(fast, g_fast), bytes=nbytes, items=1, warmup=300),
        }

    return Workload(
        f"W3 sample+update B={batch} (capacity 2^{capacity.bit_length() - 1})",
        (RECENGINE, W3_REFERENCE, W3_REFERENCE_FAST),
        build,
        note="items/s = sample+update_priorities calls per second",
    )


# ------------------------------------------------------------------------------------------- W4
def _mlp(dim: int, hidden: int, seed: int = 6) -> torch.nn.Module:
    """The state MLP, initialised from `seed` (both providers start from the same weights)."""
    mlp = torch.nn.Sequential(torch.nn.Linear(dim, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, dim))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in (mlp[0], mlp[2]):
            bound = layer.in_features**-0.5
            layer.weight.copy_((torch.rand(layer.weight.shape, generator=g) * 2 - 1) * bound)
            layer.bias.copy_((torch.rand(layer.bias.shape, generator=g) * 2 - 1) * bound)
    return mlp


def _copy_module(module: torch.nn.Module) -> torch.nn.Module:
    import copy

    target = copy.deepcopy(module)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


def _w4_batch(num_items: int, history: int, batch: int, gamma: float, device: str, g: torch.Generator) -> dict:
    done = torch.rand(batch, generator=g) < 0.05
    out = dict(
        hist=torch.randint(0, num_items, (batch, history), generator=g),
        next_hist=torch.randint(0, num_items, (batch, history), generator=g),
        action=torch.randint(0, num_items, (batch,), generator=g),
        reward=(torch.rand(batch, generator=g) < 0.1).float(),
        discount=gamma * (1.0 - done.float()),
        weights=torch.rand(batch, generator=g) * 0.9 + 0.1,
    )
    return {k: v.to(device) for k, v in out.items()}


def _w4_reference_step(num_items, dim, hidden, data, device, lr):
    """Plain PyTorch: nn.Embedding (dense grad), MLP, full B x N logits for the argmax, dense Adam."""
    from recengine.reference.replay import td_loss_reference

    g = torch.Generator().manual_seed(4)
    table = torch.nn.Embedding(num_items, dim).to(device)
    with torch.no_grad():
        table.weight.copy_(torch.randn(num_items, dim, generator=g) * 0.1)
    mlp = _mlp(dim, hidden).to(device)
    target_table, target_mlp = _copy_module(table), _copy_module(mlp)
    opt = torch.optim.Adam(list(table.parameters()) + list(mlp.parameters()), lr=lr)
    zeros = torch.zeros_like(data["reward"])

    def step():
        f = mlp(table(data["hist"]).mean(1))
        q_sa = (f * table.weight[data["action"]]).sum(-1)
        with torch.no_grad():
            f_next = mlp(table(data["next_hist"]).mean(1))
            best = (f_next @ table.weight.T).argmax(1)  # the B x N logits, materialised
            f_target = target_mlp(target_table(data["next_hist"]).mean(1))
            next_q = (f_target * target_table.weight[best]).sum(-1)
        loss, _, _ = td_loss_reference(q_sa, next_q, data["reward"], zeros, data["discount"], data["weights"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach(), best

    return step, mlp, table.weight


def _w4_recengine_step(num_items, dim, hidden, data, device, lr):
    """recengine: EmbeddingTables with lazy Adam fused into the backward (touched rows only, no dense
    gradient), catalog_topk (k=1) for the online argmax (never B x N), td_loss; the MLP by torch Adam."""
    from recengine import ops, optim
    from recengine.nn import EmbeddingTables, TableSpec

    g = torch.Generator().manual_seed(4)
    init = torch.randn(num_items, dim, generator=g) * 0.1
    batch, history = data["hist"].shape
    # one lookup per side: B history bags (mean of `history` ids) then B single-id bags (the action rows)
    ids = torch.cat([data["hist"].reshape(-1), data["action"]])
    offsets = torch.cat(
        [torch.arange(batch, device=device) * history, batch * history + torch.arange(batch + 1, device=device)]
    )
    next_ids = data["next_hist"].reshape(-1).contiguous()
    next_offsets = torch.arange(batch + 1, device=device) * history
    mlp = _mlp(dim, hidden).to(device)
    target_mlp = _copy_module(mlp)
    zeros = torch.zeros_like(data["reward"])
    specs = [TableSpec("item", num_items, dim)]
    tables = EmbeddingTables(specs, pooling="mean", optimizer=optim.Adam(lr)).to(device)
    target_tables = EmbeddingTables(specs, pooling="mean").to(device).requires_grad_(False)
    with torch.no_grad():
        tables.weights.copy_(init)
        target_tables.weights.copy_(init)
    mlp_opt = torch.optim.Adam(mlp.parameters(), lr=lr)

    def step():
        looked_up = tables(ids, offsets)
        f = mlp(looked_up[:batch])
        q_sa = (f * looked_up[batch:]).sum(-1)
        with torch.no_grad():
            f_next = mlp(tables(next_ids, next_offsets))
            _, best = ops.catalog_topk(f_next, tables.weights, 1)
            f_target = target_mlp(target_tables(next_ids, next_offsets))
            next_q = (f_target * target_tables.weights[best[:, 0]]).sum(-1)
        loss, _, _ = ops.td_loss(q_sa, next_q, data["reward"], zeros, data["discount"], data["weights"])
        mlp_opt.zero_grad(set_to_none=True)
        loss.backward()
        mlp_opt.step()
        return loss.detach(), best[:, 0]

    return step, mlp, tables.weights


def _w4_captured_step(num_items, dim, hidden, data, device, lr):
    """recengine.train.DQNStep from the same weights as `_w4_recengine_step`, captured in a CUDA graph on
    CUDA (eager elsewhere), with the batch loaded once: each call is one replay."""
    from recengine import optim
    from recengine.nn import EmbeddingTables, TableSpec
    from recengine.train.dqn_step import DQNStep

    init = torch.randn(num_items, dim, generator=torch.Generator().manual_seed(4)) * 0.1
    specs = [TableSpec("item", num_items, dim)]
    tables = EmbeddingTables(specs, pooling="mean", optimizer=optim.Adam(lr)).to(device)
    target_tables = EmbeddingTables(specs, pooling="mean").to(device).requires_grad_(False)
    with torch.no_grad():
        tables.weights.copy_(init)
        target_tables.weights.copy_(init)
    mlp = _mlp(dim, hidden).to(device)
    step = DQNStep(tables, mlp, target_tables, _copy_module(mlp), lr=lr, capture=True)
    step.load({k: v.cpu() for k, v in data.items()})
    return step.run


def _w4_dqn_step(device: str, quick: bool) -> Workload:
    num_items, dim, history, batch, hidden = (4096, 64, 50, 64, 256) if quick else (65536, 64, 50, 256, 256)
    lr = 1e-4
    note = (
        "double-DQN update: pooled 50-id history -> MLP -> Q(s,a) = <f(s), e_a>; argmax over the whole "
        "catalog by the online net, value by the target net; weighted Huber TD loss; Adam. "
        "FLOPs = the catalog scan 2*B*N*D (dominant)"
    )

    def build():
        data = _w4_batch(num_items, history, batch, 0.99, device, torch.Generator().manual_seed(5))
        ours, _, _ = _w4_recengine_step(num_items, dim, hidden, data, device, lr)
        ref, _, _ = _w4_reference_step(num_items, dim, hidden, data, device, lr)
        flops = 2.0 * batch * num_items * dim
        cases = {
            RECENGINE: Case(fn=ours, flops=flops, items=batch),
            W4_REFERENCE: Case(fn=ref, flops=flops, items=batch),
        }
        if device.startswith("cuda"):
            cases[W4_EAGER] = cases[RECENGINE]
            captured = _w4_captured_step(num_items, dim, hidden, data, device, lr)
            cases[RECENGINE] = Case(fn=captured, flops=flops, items=batch, warmup=3)
        return cases

    providers = (RECENGINE, W4_EAGER, W4_REFERENCE) if device.startswith("cuda") else (RECENGINE, W4_REFERENCE)
    return Workload(f"W4 DQN step B={batch} N={num_items} D={dim}", providers, build, note=note)


def workloads(device: str, quick: bool = False) -> list[Workload]:
    capacity = 1 << (14 if quick else 20)
    history, batch = 50, 256
    return [
        _w3_add(capacity, history, batch),
        _w3_sample_update(capacity, history, batch, beta=0.4),
        _w4_dqn_step(device, quick),
    ]
