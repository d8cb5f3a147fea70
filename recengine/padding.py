"""The padding id: the one value that marks "no item" in every history, window and observation.

Item ids are 0-based (``0 .. num_items - 1``), so -1 can never be a real item. Data loaders, the
encoder, the simulator and the agents all import it from here.
"""

PAD_ID = -1
"""marks an empty slot in an int64 history / window / observation (never a real item id)"""
