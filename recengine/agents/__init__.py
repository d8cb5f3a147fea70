"""recengine.agents."""
