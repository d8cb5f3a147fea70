"""The built-in agents of the comparison, one module each, in the order the report lists them."""

from recengine.agents.entries import (
    dqn,
    hybrid_dqn,
    hybrid_reinforce,
    hybrid_slateq,
    large_model,
    large_model_logged,
    mf_bpr,
    popularity,
    random_slates,
    reinforce,
)

ENTRIES = (
    random_slates.ENTRY,
    popularity.ENTRY,
    large_model.ENTRY,
    large_model_logged.ENTRY,
    dqn.ENTRY,
    reinforce.ENTRY,
    hybrid_dqn.ENTRY,
    hybrid_reinforce.ENTRY,
    hybrid_slateq.ENTRY,
    mf_bpr.ENTRY,
)
"""every built-in agent; a new one is a new module here and one line above"""
