"""Read a TorchRec-style KeyedJaggedTensor as the table-batched input of recengine.nn.EmbeddingTables.

A KeyedJaggedTensor (KJT) holds, for keys k_0..k_{K-1} and a batch of B samples, the values of every
(key, sample) bag key-major: ``values()`` (N,), ``lengths()`` (K*B,) and/or ``offsets()`` (K*B+1,), and
optionally ``weights()`` / ``weights_or_none()`` (N,). That is the table-major layout of the embedding op
once each key is matched to the table of the same name. The adapter needs only those methods (duck
typing): torchrec is never imported, so any object with the same interface works.

Keys may come in any order and may include keys no table uses (they are ignored, as TorchRec's
EmbeddingBagCollection ignores features it has no table for); a table without its key is an error.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from recengine.ops.jagged import select_tables

__all__ = ["is_keyed_jagged", "from_keyed_jagged"]


def is_keyed_jagged(obj: object) -> bool:
    """True for an object with the KJT interface: callable keys() and values(), and offsets() or lengths()."""
    return (
        not isinstance(obj, Tensor)
        and callable(getattr(obj, "keys", None))
        and callable(getattr(obj, "values", None))
        and (callable(getattr(obj, "offsets", None)) or callable(getattr(obj, "lengths", None)))
    )


def _kjt_offsets(kjt: object) -> Tensor:
    """The (K*B+1,) int64 offsets of a KJT, from offsets() when it has them, else from lengths()."""
    offsets = None
    if callable(getattr(kjt, "offsets", None)):
        offsets = kjt.offsets()
    if offsets is None:
        lengths = kjt.lengths() if callable(getattr(kjt, "lengths", None)) else None
        if not isinstance(lengths, Tensor) or lengths.dim() != 1:
            raise ValueError("features: a KeyedJaggedTensor needs 1-D offsets() or lengths()")
        offsets = torch.zeros(lengths.shape[0] + 1, dtype=torch.int64, device=lengths.device)
        torch.cumsum(lengths.to(torch.int64), 0, out=offsets[1:])
    if not isinstance(offsets, Tensor) or offsets.dim() != 1 or offsets.dtype not in (torch.int32, torch.int64):
        raise ValueError("features: offsets() must be a 1-D int32 or int64 tensor")
    return offsets.to(torch.int64)


def _kjt_weights(kjt: object) -> Tensor | None:
    if callable(getattr(kjt, "weights_or_none", None)):
        return kjt.weights_or_none()
    if callable(getattr(kjt, "weights", None)):
        try:
            return kjt.weights()
        except (AssertionError, ValueError, RuntimeError):  # torchrec asserts when there are no weights
            return None
    return None


def from_keyed_jagged(features: object, table_names: Sequence[str]) -> tuple[Tensor, Tensor, Tensor | None]:
    """(ids, offsets (T*B+1,) int64, per_sample_weights or None) for the tables `table_names`, in that order,
    from a KJT-like `features`. Raises ValueError naming the missing table when a key is absent."""
    if not is_keyed_jagged(features):
        raise TypeError(
            f"features: expected a KeyedJaggedTensor-like object (keys(), values(), offsets() or "
            f"lengths()), got {type(features).__name__}"
        )
    keys = list(features.keys())
    position = {k: i for i, k in enumerate(keys)}
    if len(position) != len(keys):
        raise ValueError(f"features: keys must be unique, got {keys}")
    missing = [n for n in table_names if n not in position]
    if missing:
        raise ValueError(f"features: no key for table(s) {missing}; keys are {keys}")
    values = features.values()
    if not isinstance(values, Tensor) or values.dim() != 1:
        raise ValueError("features: values() must be a 1-D tensor")
    offsets = _kjt_offsets(features)
    if keys and (offsets.shape[0] - 1) % len(keys) != 0:
        raise ValueError(f"features: {offsets.shape[0] - 1} bags do not split evenly over {len(keys)} keys")
    return select_tables(values, offsets, [position[n] for n in table_names], max(len(keys), 1), _kjt_weights(features))
