"""recengine.eval."""
