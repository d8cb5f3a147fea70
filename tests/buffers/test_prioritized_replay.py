"""recengine.buffers.PrioritizedReplay: sampling law, weights, ring buffer, n-step, threads, save/load, bad input."""

import math
import os
import threading
import time

import pytest
import torch

from recengine import _C
from recengine._native import cpu_ops
from recengine.buffers import PrioritizedReplay
from recengine.reference.replay import importance_weights_reference, n_step_reference, sample_indices_reference
from tests.helpers import assert_close

FIELDS = {
    "state": ((3,), torch.int64),
    "action": ((), torch.int64),
    "reward": ((), torch.float32),
    "next_state": ((3,), torch.int64),
    "done": ((), torch.bool),
}


def _rows(start, n, done_every=0):
    ids = torch.arange(start, start + n)
    done = (ids % done_every == done_every - 1) if done_every else torch.zeros(n, dtype=torch.bool)
    return dict(
        state=torch.stack([ids, ids + 1, ids + 2], 1),
        action=ids,
        reward=ids.float() / 10,
        next_state=torch.stack([ids + 1, ids + 2, ids + 3], 1),
        done=done,
    )


def _tree_is_exact(r: PrioritizedReplay):
    """Every internal node equals the one recomputed from the leaves, bit for bit."""
    s, m = r._sum_tree.clone(), r._min_tree.clone()
    cpu_ops().replay_tree_rebuild(s.numpy(), m.numpy())
    return torch.equal(s, r._sum_tree) and torch.equal(m, r._min_tree)


# -------------------------------------------------------------------------------- sampling law
def test_sampling_frequencies_follow_priority_to_the_alpha_chi_square():
    n, alpha = 16, 0.6
    r = PrioritizedReplay(n, FIELDS, alpha=alpha)
    r.add(**_rows(0, n))
    prio = torch.arange(1, n + 1, dtype=torch.float64) ** 1.5
    r.update_priorities(torch.arange(n), prio)
    g = torch.Generator().manual_seed(0)
    counts = torch.zeros(n)
    draws = 0
    for _ in range(400):
        _, idx, _ = r.sample(50, 0.4, g)
        counts += torch.bincount(idx, minlength=n).float()
        draws += 50
    p = prio**alpha / (prio**alpha).sum()
    expected = p * draws
    chi2 = float(((counts.double() - expected) ** 2 / expected).sum())
    assert chi2 < 37.7, chi2  # chi-square, 15 dof, p = 0.001
    # ... and it tells alpha apart: the same counts are far from proportional to prio^1
    p1 = prio / prio.sum()
    chi2_wrong = float(((counts.double() - p1 * draws) ** 2 / (p1 * draws)).sum())
    assert chi2_wrong > 200, chi2_wrong


def test_sample_matches_reference_indices_and_weights():
    r = PrioritizedReplay(100, FIELDS, alpha=0.7)
    r.add(**_rows(0, 70))
    g = torch.Generator().manual_seed(1)
    r.update_priorities(torch.arange(70), torch.rand(70, generator=g) * 5)
    r.update_priorities(torch.tensor([3, 9]), torch.tensor([0.0, 0.0]))  # never drawn, excluded from max weight
    batch, idx, w = r.sample(64, 0.5, torch.Generator().manual_seed(7))
    u = torch.rand(64, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    leaves = r.leaf_priorities()
    expected = sample_indices_reference(leaves, u)
    assert torch.equal(idx, expected)
    assert not ({3, 9} & set(idx.tolist()))
    assert_close(w, importance_weights_reference(leaves, expected, 0.5), rtol=1e-6, name="weights")
    assert w.dtype == torch.float32 and float(w.max()) <= 1.0
    assert torch.equal(batch["action"], idx) and torch.equal(batch["state"][:, 0], idx)
    assert set(batch) == set(FIELDS) | {"discount"}  # n_step=1: the fields and the discount only
    assert_close(batch["discount"], 0.99 * (1 - batch["done"].float()), name="discount")


def test_importance_weights_formula_by_hand():
    r = PrioritizedReplay(4, FIELDS, alpha=1.0)
    r.add(**_rows(0, 4))
    r.update_priorities(torch.arange(4), torch.tensor([1.0, 2.0, 3.0, 4.0]))
    _, idx, w = r.sample(8, 0.5, torch.Generator().manual_seed(0))
    p = torch.tensor([1.0, 2.0, 3.0, 4.0]) / 10
    expected = (4 * p[idx]) ** -0.5 / (4 * 0.1) ** -0.5
    assert_close(w, expected, rtol=1e-6, name="weights")


def test_update_then_sample_and_new_items_get_max_priority():
    r = PrioritizedReplay(8, FIELDS, alpha=1.0)
    r.add(**_rows(0, 4))
    r.update_priorities(torch.arange(4), torch.tensor([0.0, 0.0, 0.0, 7.0]))
    _, idx, _ = r.sample(32, 0.4, torch.Generator().manual_seed(0))
    assert set(idx.tolist()) == {3}
    r.add(**_rows(4, 2))  # new items get the largest priority ever stored (7)
    assert r.leaf_priorities().tolist() == [0, 0, 0, 7, 7, 7]
    r.update_priorities(torch.tensor([4], dtype=torch.int32), torch.tensor([3.0]))
    r.update_priorities(torch.tensor([5]), torch.tensor([2.0], dtype=torch.float64), exponent_applied=True)
    assert r.leaf_priorities().tolist() == [0, 0, 0, 7, 3, 2] and r.total_priority() == 12
    assert _tree_is_exact(r)


def test_zero_priorities_everywhere_and_empty_replay_raise():
    r = PrioritizedReplay(4, FIELDS)
    with pytest.raises(ValueError, match="empty"):
        r.sample(2, 0.4)
    r.add(**_rows(0, 2))
    r.update_priorities(torch.arange(2), torch.zeros(2))
    with pytest.raises(ValueError, match="priority"):
        r.sample(2, 0.4)


# ------------------------------------------------------------------------------- ring buffer
def test_capacity_wrap_around():
    r = PrioritizedReplay(10, FIELDS, alpha=1.0)
    r.add(**_rows(0, 7))
    r.add(**_rows(7, 8))  # wraps: slots 7,8,9 then 0..4
    assert len(r) == 10 and r.position == 5
    assert r._storage["action"].tolist() == [10, 11, 12, 13, 14, 5, 6, 7, 8, 9]
    r.add(**_rows(100, 23))  # more than capacity in one call: the newest 10 survive, in ring order
    assert r.position == (5 + 23) % 10 and len(r) == 10
    slots = [(5 + i) % 10 for i in range(23)]
    expected = {s: 100 + i for i, s in enumerate(slots)}  # later rows overwrite earlier ones
    assert r._storage["action"].tolist() == [expected[s] for s in range(10)]
    _, idx, _ = r.sample(50, 0.4, torch.Generator().manual_seed(0))
    assert int(idx.max()) < 10 and _tree_is_exact(r)


def test_capacity_not_a_power_of_two_never_samples_padding():
    r = PrioritizedReplay(5, FIELDS)
    r.add(**_rows(0, 5))
    _, idx, _ = r.sample(500, 0.4, torch.Generator().manual_seed(3))
    assert set(idx.tolist()) == set(range(5))


# --------------------------------------------------------------------------------------- n-step
@pytest.mark.parametrize("num_envs", [1, 3])
@pytest.mark.parametrize("wrap", [False, True])
def test_n_step_returns_match_reference(num_envs, wrap):
    n_step, gamma, cap = 4, 0.9, 30
    r = PrioritizedReplay(cap, FIELDS, alpha=0.5, n_step=n_step, gamma=gamma, num_envs=num_envs)
    g = torch.Generator().manual_seed(num_envs)
    total = 45 if wrap else 21
    rows = _rows(0, total)
    rows["done"] = torch.rand(total, generator=g) < 0.25
    rows["reward"] = torch.randn(total, generator=g)
    r.add(**{k: v[:15] for k, v in rows.items()})
    r.add(**{k: v[15:] for k, v in rows.items()})
    batch, idx, _ = r.sample(200, 0.4, torch.Generator().manual_seed(5))
    ref = n_step_reference(
        r._storage["reward"],
        r._storage["done"],
        idx,
        position=r.position,
        size=len(r),
        capacity=cap,
        n_step=n_step,
        gamma=gamma,
        num_envs=num_envs,
    )
    n_reward, n_discount, last, n_done, n_steps = ref
    assert_close(batch["n_reward"], n_reward, rtol=1e-5, atol=1e-6, name="n_reward")
    assert_close(batch["n_discount"], n_discount, rtol=1e-6, name="n_discount")
    assert torch.equal(batch["n_done"], n_done) and torch.equal(batch["n_steps"], n_steps)
    assert torch.equal(batch["n_next_state"], r._storage["next_state"][last])
    assert {"n_reward", "n_discount", "n_done", "n_steps", "n_next_state", "discount"} <= set(batch)
    # the data exercises both full and cut returns (the reference checks where each cut falls)
    assert (n_steps < n_step).any() and (n_steps == n_step).any()


def test_n_step_by_hand_across_an_episode_end():
    r = PrioritizedReplay(10, FIELDS, n_step=3, gamma=0.5)
    rows = _rows(0, 6)
    rows["reward"] = torch.tensor([1.0, 2.0, 4.0, 8.0, 16.0, 32.0])
    rows["done"] = torch.tensor([False, True, False, False, False, False])
    r.add(**rows)
    slots = torch.tensor([0, 1, 2, 4, 5])
    out = r._n_step(slots)
    # slot 0: 1 + 0.5*2 then done; slot 1: done at once; slot 2: 4 + 0.5*8 + 0.25*16;
    # slot 4: 16 + 0.5*32 then the write head; slot 5: the newest row alone
    assert out["n_reward"].tolist() == [2.0, 2.0, 12.0, 32.0, 32.0]
    assert out["n_steps"].tolist() == [2, 1, 3, 2, 1]
    assert out["n_discount"].tolist() == [0.0, 0.0, 0.125, 0.25, 0.5]
    assert out["n_next_state"][:, 0].tolist() == [2, 2, 5, 6, 6]


@pytest.mark.parametrize("reward_dtype,done_dtype", [(torch.float64, torch.float32), (torch.float32, torch.uint8)])
def test_n_step_other_column_dtypes(reward_dtype, done_dtype):
    fields = dict(FIELDS, reward=((), reward_dtype), done=((), done_dtype))
    r = PrioritizedReplay(10, fields, n_step=3, gamma=0.5)
    rows = _rows(0, 6)
    rows["reward"] = torch.tensor([1.0, 2.0, 4.0, 8.0, 16.0, 32.0], dtype=reward_dtype)
    rows["done"] = torch.tensor([0, 1, 0, 0, 0, 0], dtype=done_dtype)
    r.add(**rows)
    out = r._n_step(torch.tensor([0, 1, 2, 4, 5]))
    assert out["n_reward"].tolist() == [2.0, 2.0, 12.0, 32.0, 32.0]
    assert out["n_done"].tolist() == [True, True, False, False, False]
    with pytest.raises(TypeError, match="n-step"):
        PrioritizedReplay(10, dict(FIELDS, reward=((), torch.int64)), n_step=2)


# ---------------------------------------------------------------------------------- concurrency
def test_concurrent_add_sample_update_keeps_tree_and_rows_consistent():
    fields = {
        "payload": ((64,), torch.int64),
        "checksum": ((), torch.int64),
        "reward": ((), torch.float32),
        "done": ((), torch.bool),
    }
    r = PrioritizedReplay(4096, fields, alpha=0.6, n_step=3)
    errors, counts = [], {"add": 0, "sample": 0}
    stop = time.monotonic() + 2.0

    def adder():
        g = torch.Generator().manual_seed(0)
        try:
            while time.monotonic() < stop:
                payload = torch.randint(0, 1 << 40, (256, 64), generator=g)
                r.add(
                    payload=payload,
                    checksum=payload.sum(1),
                    reward=torch.rand(256, generator=g),
                    done=torch.rand(256, generator=g) < 0.1,
                )
                counts["add"] += 1
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def sampler():
        g = torch.Generator().manual_seed(1)
        try:
            while time.monotonic() < stop:
                if len(r) == 0:
                    continue
                batch, idx, w = r.sample(128, 0.4, g)
                if not torch.equal(batch["payload"].sum(1), batch["checksum"]):
                    errors.append(AssertionError("half-written transition"))
                if not (torch.isfinite(w).all() and (w > 0).all() and (w <= 1).all()):
                    errors.append(AssertionError(f"bad weights {w}"))
                r.update_priorities(idx, torch.rand(128, generator=g) + 0.01)
                counts["sample"] += 1
        except Exception as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=adder), threading.Thread(target=sampler), threading.Thread(target=sampler)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors[:3]
    assert counts["add"] > 0 and counts["sample"] > 0
    assert _tree_is_exact(r)
    leaves = r.leaf_priorities()
    assert math.isclose(r.total_priority(), math.fsum(leaves.tolist()), rel_tol=1e-12)
    assert float(r._min_tree[1]) == float(leaves[leaves > 0].min())


# ----------------------------------------------------------------------------------- save/load
def test_save_load_round_trip(tmp_path):
    r = PrioritizedReplay(12, FIELDS, alpha=0.7, n_step=2, gamma=0.8)
    r.add(**_rows(0, 9, done_every=4))
    r.update_priorities(torch.arange(9), torch.linspace(0.1, 3, 9))
    r.add(**_rows(9, 5, done_every=4))  # wrapped, max priority
    path = tmp_path / "replay.safetensors"
    r.save(path)
    q = PrioritizedReplay.load(path)
    assert (len(q), q.position, q.capacity, q.alpha, q.n_step, q.gamma) == (12, 2, 12, 0.7, 2, 0.8)
    assert q.max_leaf_priority == r.max_leaf_priority
    assert torch.equal(q._sum_tree, r._sum_tree) and torch.equal(q._min_tree, r._min_tree)
    for name in FIELDS:
        assert torch.equal(q._storage[name], r._storage[name])
    a = r.sample(16, 0.4, torch.Generator().manual_seed(3))
    b = q.sample(16, 0.4, torch.Generator().manual_seed(3))
    assert torch.equal(a[1], b[1]) and torch.equal(a[2], b[2])
    assert all(torch.equal(a[0][k], b[0][k]) for k in a[0])
    assert [p for p in os.listdir(tmp_path)] == ["replay.safetensors"]


def test_save_load_partial_buffer(tmp_path):
    r = PrioritizedReplay(100, FIELDS)
    r.add(**_rows(0, 3))
    r.save(tmp_path / "r.st")
    q = PrioritizedReplay.load(tmp_path / "r.st")
    assert len(q) == 3 and q.position == 3 and torch.equal(q._storage["action"], r._storage["action"])


def test_interrupted_save_leaves_previous_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "replay.safetensors"
    r = PrioritizedReplay(8, FIELDS)
    r.add(**_rows(0, 4))
    r.save(path)
    before = path.read_bytes()
    r.add(**_rows(4, 4))

    import safetensors.torch

    real = safetensors.torch.save_file

    def crash_midway(tensors, filename, metadata=None):
        real(tensors, filename, metadata=metadata)
        with open(filename, "r+b") as f:  # half a file, then the "crash"
            f.truncate(os.path.getsize(filename) // 2)
        raise KeyboardInterrupt("killed during save")

    monkeypatch.setattr(safetensors.torch, "save_file", crash_midway)
    with pytest.raises(KeyboardInterrupt):
        r.save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["replay.safetensors"]  # the temporary file is gone
    assert len(PrioritizedReplay.load(path)) == 4


def test_load_rejects_other_files(tmp_path):
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "x.st"))
    with pytest.raises(ValueError, match="not a recengine"):
        PrioritizedReplay.load(tmp_path / "x.st")


# ----------------------------------------------------------------------------------- bad input
def _snapshot(r):
    return (
        r._sum_tree.clone(),
        r._min_tree.clone(),
        {k: v.clone() for k, v in r._storage.items()},
        len(r),
        r.position,
        r.max_leaf_priority,
    )


def _unchanged(r, snap):
    s, m, st, n, pos, mx = snap
    return (
        torch.equal(s, r._sum_tree)
        and torch.equal(m, r._min_tree)
        and len(r) == n
        and r.position == pos
        and r.max_leaf_priority == mx
        and all(torch.equal(st[k], r._storage[k]) for k in st)
    )


@pytest.mark.parametrize(
    "mutate,exc,match",
    [
        (lambda b: b.pop("done"), ValueError, "missing"),
        (lambda b: b.update(extra=torch.zeros(4)), ValueError, "unknown"),
        (lambda b: b.update(action=b["action"].int()), TypeError, "action"),
        (lambda b: b.update(state=b["state"][:, :2]), ValueError, "state"),
        (lambda b: b.update(reward=b["reward"][:3]), ValueError, "reward"),
        (lambda b: b.update(done=[False] * 4), TypeError, "done"),
    ],
)
def test_add_bad_input_changes_nothing(mutate, exc, match):
    r = PrioritizedReplay(8, FIELDS)
    r.add(**_rows(0, 3))
    snap = _snapshot(r)
    rows = _rows(3, 4)
    mutate(rows)
    with pytest.raises(exc, match=match):
        r.add(**rows)
    assert _unchanged(r, snap)


@pytest.mark.parametrize(
    "idx,prio,exc,match",
    [
        (torch.tensor([0, 1]), torch.tensor([1.0, float("nan")]), ValueError, "finite"),
        (torch.tensor([0, 1]), torch.tensor([1.0, float("inf")]), ValueError, "finite"),
        (torch.tensor([0, 1]), torch.tensor([1.0, -2.0]), ValueError, ">= 0"),
        (torch.tensor([0, 5]), torch.tensor([1.0, 2.0]), IndexError, "indices"),  # slot 5 never written
        (torch.tensor([0.0, 1.0]), torch.tensor([1.0, 2.0]), TypeError, "indices"),
        (torch.tensor([0, 1]), torch.tensor([1, 2]), TypeError, "priorities"),
        (torch.tensor([0, 1]), torch.tensor([1.0]), ValueError, "priorities"),
    ],
)
def test_update_priorities_bad_input_changes_nothing(idx, prio, exc, match):
    r = PrioritizedReplay(8, FIELDS)
    r.add(**_rows(0, 3))
    snap = _snapshot(r)
    with pytest.raises(exc, match=match):
        r.update_priorities(idx, prio)
    assert _unchanged(r, snap)


@pytest.mark.parametrize(
    "capacity,fields,kwargs,exc,match",
    [
        (4, {"reward": ((), torch.float32)}, {}, ValueError, "done"),
        (0, FIELDS, {}, ValueError, "capacity"),
        (10, FIELDS, {"num_envs": 3}, ValueError, "multiple"),
        (10, FIELDS, {"next_fields": ["nope"]}, ValueError, "next_fields"),
        (4, dict(FIELDS, n_reward=((), torch.float32)), {}, ValueError, "reserved"),
        (4, dict(FIELDS, emb=((2,), torch.bfloat16)), {}, TypeError, "NumPy"),
    ],
)
def test_constructor_arguments_are_checked(capacity, fields, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        PrioritizedReplay(capacity, fields, **kwargs)


def test_add_needs_a_multiple_of_num_envs_rows():
    r = PrioritizedReplay(6, FIELDS, n_step=2, num_envs=2)
    with pytest.raises(ValueError, match="multiple"):
        r.add(**_rows(0, 3))


@pytest.mark.parametrize(
    "args,kwargs,exc,match",
    [
        ((0, 0.4), {}, ValueError, "batch_size"),
        ((2, float("nan")), {}, ValueError, "beta"),
        ((2, 0.4), {"generator": 3}, TypeError, "generator"),
    ],
)
def test_sample_arguments_are_checked(args, kwargs, exc, match):
    r = PrioritizedReplay(6, FIELDS, n_step=2, num_envs=2)
    r.add(**_rows(0, 2))
    with pytest.raises(exc, match=match):
        r.sample(*args, **kwargs)


# --------------------------------------------------------------------------------- threads
class _RecordingModule:
    """Stands in for recengine._C: forwards every kernel, records the team sizes it is given."""

    def __init__(self, module):
        self._module = module
        self.team_sizes: list[int] = []

    def set_num_threads(self, n: int) -> None:
        self.team_sizes.append(n)
        self._module.set_num_threads(n)

    def __getattr__(self, name):
        return getattr(self._module, name)


@pytest.mark.parametrize("method", ["add", "sample", "update_priorities"])
def test_torch_set_num_threads_reaches_the_cpp_loops(monkeypatch, method):
    """The buffer reaches the C++ kernels the one way the ops do, which gives their OpenMP team torch's thread
    count (with torch and the extension on different OpenMP runtimes, only this keeps them in step)."""
    from recengine import _native

    r = PrioritizedReplay(64, FIELDS)
    r.add(**_rows(0, 16))
    recorder = _RecordingModule(_C)
    monkeypatch.setattr(_native, "_C", recorder)
    monkeypatch.setattr(_native, "_team_size", [0])  # forget the last team size: the next call must set it
    calls = {
        "add": lambda: r.add(**_rows(16, 4)),
        "sample": lambda: r.sample(8, 0.4, generator=torch.Generator().manual_seed(0)),
        "update_priorities": lambda: r.update_priorities(torch.tensor([0, 1]), torch.tensor([0.5, 2.0])),
    }
    calls[method]()
    assert recorder.team_sizes == [torch.get_num_threads()]


# ------------------------------------------------------------------------------------ TensorDict
def _tensordict_module():
    return pytest.importorskip("tensordict", reason="the optional tensordict extra is not installed")


def test_add_tensordict_stores_what_keyword_columns_store():
    td = _tensordict_module()
    from_td, from_kw = PrioritizedReplay(16, FIELDS, n_step=2), PrioritizedReplay(16, FIELDS, n_step=2)
    from_td.add(td.TensorDict(_rows(0, 6, done_every=3), batch_size=[6]))
    from_kw.add(**_rows(0, 6, done_every=3))
    a = from_td.sample(8, 0.4, torch.Generator().manual_seed(1))
    b = from_kw.sample(8, 0.4, torch.Generator().manual_seed(1))
    assert a[0].keys() == b[0].keys()
    for key in a[0]:
        assert torch.equal(a[0][key], b[0][key]), key
    assert torch.equal(a[1], b[1]) and torch.equal(a[2], b[2])


def test_sample_as_tensordict_holds_the_batch_indices_and_weights():
    td = _tensordict_module()
    r = PrioritizedReplay(16, FIELDS, n_step=3)
    r.add(**_rows(0, 10, done_every=4))
    got = r.sample(5, 0.5, torch.Generator().manual_seed(2), as_tensordict=True)
    batch, indices, weights = r.sample(5, 0.5, torch.Generator().manual_seed(2))
    assert isinstance(got, td.TensorDict) and tuple(got.batch_size) == (5,)
    assert set(got.keys()) == {*batch, "index", "_weight"}
    assert torch.equal(got["index"], indices) and torch.equal(got["_weight"], weights)
    for key, value in batch.items():
        assert torch.equal(got[key], value), key


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda r, td: r.add(td.TensorDict(_rows(0, 2), batch_size=[2]), **_rows(0, 2)), ValueError, "not both"),
        (lambda r, td: r.add(torch.zeros(2)), TypeError, "data: expected a TensorDict"),
        (
            lambda r, td: r.add(td.TensorDict({k: v for k, v in _rows(0, 2).items() if k != "done"}, batch_size=[2])),
            ValueError,
            r"missing field\(s\) \['done'\]",
        ),
    ],
)
def test_bad_tensordict_input_raises_naming_the_argument(call, exc, match):
    td = _tensordict_module()
    with pytest.raises(exc, match=match):
        call(PrioritizedReplay(8, FIELDS), td)


def test_field_named_like_the_sample_keys_cannot_sample_as_tensordict():
    _tensordict_module()
    r = PrioritizedReplay(8, {**FIELDS, "index": ((), torch.int64)})
    r.add(**_rows(0, 2), index=torch.arange(2))
    with pytest.raises(ValueError, match="as_tensordict: field"):
        r.sample(2, 0.4, as_tensordict=True)
