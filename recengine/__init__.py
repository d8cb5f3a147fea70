"""recengine: fused operators and a full system for large-sequence-model + RL recommenders."""
__version__ = "0.1.0"
