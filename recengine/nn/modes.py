"""Switching a module's mode for a while: evaluation mode around an inference call, dropout off for good.

Acting, scoring and evaluating must not see dropout noise, yet the module may be in the middle of training;
`eval_mode` puts it in evaluation mode and restores whatever mode it was in, even on an exception.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """`module.eval()` inside the block, its previous training flag restored afterwards."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def disable_dropout(module: nn.Module) -> nn.Module:
    """Dropout off everywhere in `module`, in either mode (RL targets and importance ratios assume the policy
    that acted is the one trained). Returns `module`."""
    for m in module.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
        if isinstance(m, nn.MultiheadAttention):
            m.dropout = 0.0
    return module
