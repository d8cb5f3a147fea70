"""Experience buffers for the RL agents: storage and sampling over the replay family's C++ kernels."""

from recengine.buffers.prioritized_replay import PrioritizedReplay  # noqa: F401
