"""recengine.serving.threads: the wait policy is set explicitly, and never silently where it cannot apply."""

import pytest

from recengine.serving.threads import serving_environment, set_wait_policy


def test_serving_environment_sets_the_policy_on_a_copy():
    base = {"PATH": "/bin"}
    env = serving_environment("passive", base)
    assert env == {"PATH": "/bin", "OMP_WAIT_POLICY": "PASSIVE"} and base == {"PATH": "/bin"}


def test_setting_the_policy_after_torch_started_is_refused(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    with pytest.raises(RuntimeError, match="before torch is imported"):
        set_wait_policy("passive")  # torch is imported in the test process


def test_the_policy_in_force_is_accepted(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    set_wait_policy("passive")


@pytest.mark.parametrize("call", [lambda: set_wait_policy("spin"), lambda: serving_environment("spin")])
def test_unknown_policy_names_the_argument(call):
    with pytest.raises(ValueError, match="policy"):
        call()
