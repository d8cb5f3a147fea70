"""recengine.report."""
