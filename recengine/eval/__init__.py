"""recengine.eval: ranking metrics and off-policy evaluation.

``ope`` (the estimators, NumPy only), ``ope_inputs`` (logged feedback checked and reduced), ``ope_reference``
(the plain oracle), ``reward_regression`` (a reward model for external logs), ``bernoulli_ts`` (the Open Bandit
Dataset policies' action distributions), ``slate_policies`` and ``simulated_ope`` (OPE inside the simulator).
"""
