"""recengine.env."""
