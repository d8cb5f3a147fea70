"""The package's version, in a module of its own so that code below the package root (the compiled encoder's cache
key) can read it without importing the root, which sits above every layer (it re-exports serving and training)."""

__version__ = "0.1.0"
