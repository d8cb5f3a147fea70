"""Spawned worlds shared by the distributed tests: one 2-rank and one 3-rank world per session, each running
every check that needs real processes (exactness scenarios, failures, checkpoints) in one spawn."""

from __future__ import annotations

import pytest

from recengine.data import histories_of, leave_one_out, make_synthetic
from recengine.distributed.launch import WorldFailed, run_local
from recengine.distributed.train_sasrec import train_sasrec_distributed
from recengine.train.config import SASRecConfig
from recengine.train.sasrec import train_sasrec
from tests.distributed import worlds

#: the exactness scenarios every world trains (optimizer x plan, skewed ids, mean pooling with weights)
SCENARIOS = tuple(
    [worlds.Scenario(opt, plan) for opt in ("sgd", "rowwise_adagrad", "adam") for plan in ("row_wise", "table_wise")]
    + [
        worlds.Scenario("rowwise_adagrad", "row_wise", skewed=True),
        worlds.Scenario("adam", "table_wise", skewed=True),
        worlds.Scenario("adam", "mixed", pooling="mean", weighted=True),
    ]
)
CHECKPOINT_SCENARIO = worlds.Scenario("adam", "mixed")
FAILURE_TASKS = [
    ("bad_id", "bad_id_on_last_rank", ()),
    ("mismatched_plan", "mismatched_plan", ()),
    ("plan_for_other_world", "plan_for_other_world", ()),
    ("still_works", "still_works_after_errors", ()),
]
TIMEOUTS = dict(timeout_s=300, collective_timeout_s=30)


@pytest.fixture(scope="session")
def checkpoint_dirs(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("sharded_checkpoints")
    return {name: str(root / name) for name in ("saved_by_2", "resaved_by_3", "killed")}


@pytest.fixture(scope="session")
def world2_run(tmp_path_factory, checkpoint_dirs) -> dict:
    """The 2-rank world: per rank {task key: ("ok", value) | ("error", text)}, and what run_local returned."""
    out = tmp_path_factory.mktemp("world2")
    tasks = [(s.label(), "train_sharded", (s,)) for s in SCENARIOS] + FAILURE_TASKS
    tasks += [(f"traffic {kind}", "traffic", (kind,)) for kind in ("row-wise", "table-wise")]
    tasks.append(("save", "save_trained", (checkpoint_dirs["saved_by_2"], CHECKPOINT_SCENARIO)))
    returned = run_local(worlds.run_tasks, 2, (tasks, str(out)), **TIMEOUTS)
    return {"ranks": worlds.read_results(str(out), 2), "returned": returned}


@pytest.fixture(scope="session")
def world2(world2_run) -> list[dict]:
    return world2_run["ranks"]


@pytest.fixture(scope="session")
def world3(tmp_path_factory, checkpoint_dirs, world2) -> dict:
    """The 3-rank world's results, and the error the world ended with (its last rank dies mid-save)."""
    out = tmp_path_factory.mktemp("world3")
    tasks = [(s.label(), "train_sharded", (s,)) for s in SCENARIOS] + FAILURE_TASKS
    tasks.append(
        (
            "load",
            "load_and_resave",
            (checkpoint_dirs["saved_by_2"], checkpoint_dirs["resaved_by_3"], CHECKPOINT_SCENARIO),
        )
    )
    tasks.append(("killed", "die_during_second_save", (checkpoint_dirs["killed"],)))
    ended = None
    try:
        run_local(worlds.run_tasks, 3, (tasks, str(out)), **TIMEOUTS)
    except WorldFailed as exc:
        ended = exc
    return {"ranks": worlds.read_results(str(out), 3), "ended": ended}


@pytest.fixture(scope="session")
def worlds_by_size(world2, world3) -> dict[int, list[dict]]:
    return {2: world2, 3: world3["ranks"]}


#: the small config the data-parallel training tests run on 1 and 2 processes (same epoch budget)
SASREC_CONFIG = SASRecConfig(dim=16, max_len=10, num_layers=1, feature_dim=8, batch_size=32, max_epochs=2, seed=0)


@pytest.fixture(scope="session")
def sasrec_runs(tmp_path_factory) -> dict:
    """One 1-process and one 2-process run of SASREC_CONFIG on the same synthetic data; the 2-process run writes
    its model file and sharded checkpoint into "out"."""
    data = make_synthetic(num_users=150, num_items=60, seed=0)
    split = leave_one_out(histories_of(data))
    quiet = dict(split=split, progress=False, log=lambda *a: None)
    one = train_sasrec(data, SASREC_CONFIG, **quiet)
    out = str(tmp_path_factory.mktemp("ddp_run"))
    two = train_sasrec_distributed(data, SASREC_CONFIG, nproc=2, out_dir=out, **quiet)
    return {"one": one, "two": two, "out": out, "users": len(split.eval_users)}
