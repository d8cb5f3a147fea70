"""Plain-PyTorch references: the ground truth that tests and benchmarks import (never a second copy)."""
