"""recengine.nn.keyed_jagged: EmbeddingTables fed a KeyedJaggedTensor-like object, torchrec not needed."""

from __future__ import annotations

import pytest
import torch

from recengine.nn import EmbeddingTables, TableSpec
from recengine.nn.keyed_jagged import from_keyed_jagged, is_keyed_jagged
from recengine.optim import RowwiseAdagrad
from tests.helpers import assert_close

SPECS = [TableSpec("user", 9, 4), TableSpec("item", 30, 8), TableSpec("genre", 5, 4)]
BATCH = 3


class StandInKJT:
    """The KeyedJaggedTensor interface recengine reads, and nothing else."""

    def __init__(self, keys, values, lengths, weights=None, with_offsets=True):
        self._keys, self._values, self._lengths, self._weights = list(keys), values, lengths, weights
        self._with_offsets = with_offsets

    def keys(self):
        return self._keys

    def values(self):
        return self._values

    def lengths(self):
        return self._lengths

    def offsets(self):
        if not self._with_offsets:
            return None
        return torch.cat([torch.zeros(1, dtype=torch.int64), self._lengths.cumsum(0)])

    def weights_or_none(self):
        return self._weights


def _per_key(seed: int, keys):
    """{key: (values, lengths (B,))} with ids valid for every table of SPECS."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key in keys:
        lengths = torch.randint(0, 4, (BATCH,), generator=g)
        out[key] = (torch.randint(0, 5, (int(lengths.sum()),), generator=g), lengths)
    return out


def _kjt(per_key, keys, **kw):
    values = torch.cat([per_key[k][0] for k in keys])
    lengths = torch.cat([per_key[k][1] for k in keys])
    return StandInKJT(keys, values, lengths, **kw)


def _table_major(per_key):
    """The same batch as (ids, offsets) in SPECS order: what EmbeddingTables takes directly."""
    kjt = _kjt(per_key, [s.name for s in SPECS])
    return kjt.values(), kjt.offsets()


@pytest.mark.parametrize("with_offsets", [True, False], ids=["offsets", "lengths_only"])
def test_kjt_in_table_order_equals_the_plain_input(with_offsets):
    tables = EmbeddingTables(SPECS, seed=0)
    per_key = _per_key(1, tables.names)
    ids, offsets = _table_major(per_key)
    assert_close(tables(_kjt(per_key, tables.names, with_offsets=with_offsets)), tables(ids, offsets))


def test_keys_in_another_order_with_an_extra_key_are_matched_by_name():
    tables = EmbeddingTables(SPECS, optimizer=RowwiseAdagrad(lr=0.1), seed=0)
    keys = ["genre", "unused", "user", "item"]
    per_key = _per_key(2, keys)
    ids, offsets = _table_major(per_key)
    with torch.no_grad():
        assert_close(tables(_kjt(per_key, keys)), tables(ids, offsets))


def test_kjt_weights_are_the_per_sample_weights():
    tables = EmbeddingTables(SPECS, seed=0)
    keys = ["item", "genre", "user"]
    per_key = _per_key(3, keys)
    kjt = _kjt(per_key, keys)
    kjt._weights = torch.rand(kjt.values().numel(), generator=torch.Generator().manual_seed(4))
    ids, offsets, psw = from_keyed_jagged(kjt, tables.names)
    assert_close(tables(kjt), tables(ids, offsets, psw))
    start = int(per_key["item"][1].sum()) + int(per_key["genre"][1].sum())  # "user" comes last in the KJT
    assert torch.equal(psw[: int(per_key["user"][1].sum())], kjt._weights[start:])


def test_missing_key_raises_naming_the_table():
    tables = EmbeddingTables(SPECS, seed=0)
    per_key = _per_key(5, ["user", "item"])
    with pytest.raises(ValueError, match=r"no key for table\(s\) \['genre'\]"):
        tables(_kjt(per_key, ["user", "item"]))


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda t: from_keyed_jagged(object(), t.names), TypeError, "features: expected a KeyedJaggedTensor"),
        (lambda t: t(torch.zeros(3, dtype=torch.int64)), TypeError, "offsets: required"),
        (lambda t: t(_kjt(_per_key(6, t.names), t.names), None, torch.ones(1)), ValueError, "per_sample_weights"),
    ],
)
def test_bad_input_raises_naming_the_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call(EmbeddingTables(SPECS, seed=0))


def test_a_tensor_is_not_a_kjt():
    assert not is_keyed_jagged(torch.zeros(2))
    assert is_keyed_jagged(_kjt(_per_key(7, ["user"]), ["user"]))


def test_torchrec_keyed_jagged_tensor():
    jagged = pytest.importorskip(
        "torchrec.sparse.jagged_tensor", reason="torchrec (and its fbgemm_gpu) is not installed here"
    )
    tables = EmbeddingTables(SPECS, seed=0)
    keys = ["item", "user", "genre"]
    per_key = _per_key(8, keys)
    kjt = jagged.KeyedJaggedTensor.from_lengths_sync(
        keys=keys, values=torch.cat([per_key[k][0] for k in keys]), lengths=torch.cat([per_key[k][1] for k in keys])
    )
    ids, offsets = _table_major(per_key)
    assert_close(tables(kjt), tables(ids, offsets))
