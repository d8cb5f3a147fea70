from recengine.agents.registry import registered
from recengine.report.compare_config import CompareConfig


def test_the_default_run_compares_the_large_model_with_its_rl_fine_tuning_and_the_no_rl_exclusion():
    cfg = CompareConfig()
    known = registered()
    assert all(name in known for name in cfg.agents), set(cfg.agents) - set(known)
    # the large model, the same with the user's logged items excluded (no RL), and the RL fine-tuning that closes
    # the headroom: the three rows the report's "does RL beat the large model?" answer is read from
    order = list(cfg.agents)
    assert order.index("large-model") < order.index("large-model-logged") < order.index("hybrid-slateq")
    assert cfg.rl_steps["hybrid-slateq"] > 0
    # every off-policy target is an agent the default run trains
    assert set(cfg.ope_targets) <= set(cfg.agents)


def test_quick_settings_shrink_every_learning_budget():
    cfg = CompareConfig()
    quick = CompareConfig()
    quick.quick_settings()
    assert quick.quick and all(quick.rl_steps[n] < cfg.rl_steps[n] for n in cfg.rl_steps)
