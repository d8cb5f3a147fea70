"""Spawned worlds shared by the distributed tests: one 2-rank and one 3-rank world per session, each running
every check that needs real processes (exactness scenarios, failures, checkpoints) in one spawn."""

from __future__ import annotations

import pytest

from recengine.distributed.launch import WorldFailed, run_local
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
