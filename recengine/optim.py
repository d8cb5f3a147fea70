"""Optimizers fused into the backward of recengine.nn.EmbeddingTables.

These are descriptions, not torch.optim optimizers: EmbeddingTables(specs, optimizer=...) applies
the update inside its backward, to the rows the batch touched, in place (no dense gradient).
The gradient g of a row is summed over all its occurrences in the batch first.

- SGD(lr):                      w -= lr * g
- RowwiseAdagrad(lr, eps):      one state float per row, from 0: s += mean(g*g); w -= lr * g / (sqrt(s) + eps)
- Adam(lr, betas, eps):         lazy Adam: only touched rows update their m, v (R x D each); bias
                                corrections use a GLOBAL step count (number of updates so far, the same
                                for every row, as torch.optim.SparseAdam):
                                w -= lr * (m / (1 - b1^step)) / (sqrt(v / (1 - b2^step)) + eps)

`lr` may be changed between steps (e.g. `tables.optimizer.lr = 0.01`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def _check_lr_eps(lr, eps) -> None:
    for name, value in (("lr", lr), ("eps", eps)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    if not 0 <= lr < math.inf:
        raise ValueError(f"lr: must be a finite number >= 0, got {lr}")
    if not 0 < eps < math.inf:
        raise ValueError(f"eps: must be a finite number > 0, got {eps}")


@dataclass
class SGD:
    """Plain SGD on the touched rows; no state."""

    lr: float

    #: kernel name of the update (recengine.ops.embedding_bag.OPTIMIZERS)
    kind = "sgd"

    def __post_init__(self):
        _check_lr_eps(self.lr, 1.0)

    def state_shapes(self, num_rows: int, dim: int) -> dict[str, tuple[int, ...]]:
        return {}


@dataclass
class RowwiseAdagrad:
    """Adagrad with one accumulator per row (the mean of g*g over the row), starting at 0."""

    lr: float
    eps: float = 1e-8

    kind = "rowwise_adagrad"

    def __post_init__(self):
        _check_lr_eps(self.lr, self.eps)

    def state_shapes(self, num_rows: int, dim: int) -> dict[str, tuple[int, ...]]:
        return {"momentum1": (num_rows,)}


@dataclass
class Adam:
    """Lazy Adam (touched rows only) with a global step count for the bias corrections."""

    lr: float
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8

    kind = "adam"

    def __post_init__(self):
        _check_lr_eps(self.lr, self.eps)
        if (
            not isinstance(self.betas, (tuple, list))
            or len(self.betas) != 2
            or not all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0.0 <= b < 1.0 for b in self.betas)
        ):
            raise ValueError(f"betas: expected two numbers in [0, 1), got {self.betas}")
        self.betas = (float(self.betas[0]), float(self.betas[1]))

    def state_shapes(self, num_rows: int, dim: int) -> dict[str, tuple[int, ...]]:
        return {"momentum1": (num_rows, dim), "momentum2": (num_rows, dim)}


FusedOptimizer = SGD | RowwiseAdagrad | Adam
