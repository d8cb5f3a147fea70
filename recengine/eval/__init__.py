"""recengine.eval: metrics and estimators only, leaf code every system package may use.

``metrics`` (HR@K / NDCG@K / MRR@K over the full catalog, seen items masked), ``offline`` and ``cold_start`` (a
sequence model scored on leave-one-out and cold-item splits), ``beyond_accuracy`` (coverage, diversity, novelty,
popularity bias), ``stats`` (intervals, paired differences), the off-policy estimators: ``ope`` (functions of
per-decision arrays), ``ope_estimators`` (obp-style classes with intervals), ``ope_inputs`` (logged feedback
checked and reduced; ``ope_reduce`` its numba pass), ``ope_sessions`` (per-session layout and cumulative ratios);
``reward_regression`` (a reward model for external logs) and ``bernoulli_ts`` (the Open Bandit Dataset policies'
action distributions). It imports data, nn and ops, never the simulator or the agents: what judges agents in a
simulator is ``recengine.judging``.
"""
