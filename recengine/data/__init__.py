"""recengine.data."""
