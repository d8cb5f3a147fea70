"""A TorchDispatchMode that counts the ATen ops a block of code calls (shared by the sync-free step tests)."""

from collections import Counter

from torch.utils._python_dispatch import TorchDispatchMode

#: ops that read a tensor's value back to the host (a device sync on an accelerator)
HOST_READS = ("aten._local_scalar_dense", "aten.item", "aten.nonzero")


class OpCounter(TorchDispatchMode):
    """Counts every op dispatched inside `with OpCounter() as c:` by its packet name (c.ops)."""

    def __init__(self):
        super().__init__()
        self.ops = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))

    def host_reads(self) -> dict:
        return {name: n for name, n in self.ops.items() if name in HOST_READS}
