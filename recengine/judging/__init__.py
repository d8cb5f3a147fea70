"""recengine.judging: what judges agents in a simulator, above both the agents and the simulator.

``slate_policies`` (slate policies that know their probabilities: what off-policy evaluation in the simulator logs
and targets), ``simulated_ope`` (off-policy evaluation inside the simulator, where the truth is known: logging
rollouts, the fitted click model, ``ope_check``) and ``simulator_validation`` (is the simulator fit to judge
policies: its user model on real held-out data, and its ordering of known policies against offline data). The
estimators and metrics they use are ``recengine.eval``'s.
"""
