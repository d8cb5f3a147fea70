"""Plain references: the ground truth that tests and benchmarks import (never a second copy).

One module per operator family in plain PyTorch, and ``ope``: the off-policy estimators in plain NumPy, written
the way obp writes them. Product code never imports this package.
"""
