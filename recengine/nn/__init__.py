"""nn.Modules built on the ops."""
# One import line per module (add yours):
