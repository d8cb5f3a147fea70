"""recengine.nn.SequenceEncoder under torch.compile and torch.export: no graph breaks, the same states as eager
(PAD_ID anywhere, empty rows), and bad ids still rejected (beside tests/nn/test_sequence_encoder.py)."""

from __future__ import annotations

import pytest
import torch

from recengine.padding import PAD_ID
from tests.helpers import assert_close
from tests.nn.test_sequence_encoder import N, encoder

BATCH, SLOTS = 6, 8


class _Call(torch.nn.Module):
    """One encoder method as a module of (items, users), so dynamo and export see a plain forward."""

    def __init__(self, method: str, use_users: bool):
        super().__init__()
        self.encoder, self.method, self.use_users = encoder(), method, use_users

    def forward(self, items, users):
        return getattr(self.encoder, self.method)(items, users if self.use_users else None)


def _histories(seed: int, slots: int = SLOTS) -> tuple[torch.Tensor, torch.Tensor]:
    """Random (BATCH, slots) histories with PAD_ID scattered anywhere, one full row and one empty row, and users."""
    g = torch.Generator().manual_seed(seed)
    items = torch.randint(0, N, (BATCH, slots), generator=g)
    items[torch.rand(BATCH, slots, generator=g) < 0.4] = PAD_ID
    items[0] = torch.randint(0, N, (slots,), generator=g)
    items[1] = PAD_ID
    return items, torch.randint(0, 12, (BATCH,), generator=g)


CALLS = [("forward", False), ("forward", True), ("last_state", False), ("last_state", True)]
CALL_IDS = ["forward", "forward_users", "last_state", "last_state_users"]


@pytest.mark.parametrize("method, use_users", CALLS, ids=CALL_IDS)
def test_compiles_without_graph_breaks(method, use_users):
    explanation = torch._dynamo.explain(_Call(method, use_users))(*_histories(0))
    torch._dynamo.reset()
    assert explanation.graph_break_count == 0, explanation.break_reasons


@pytest.mark.parametrize("method, use_users", CALLS, ids=CALL_IDS)
def test_exported_program_matches_eager(method, use_users):
    module = _Call(method, use_users)
    with torch.no_grad():
        exported = torch.export.export(module, _histories(0)).module()
        for seed in (1, 2):
            got, want = exported(*_histories(seed)), module(*_histories(seed))
            if method == "forward":  # states at PAD_ID slots are meaningless
                keep = _histories(seed)[0] != PAD_ID
                got, want = got[keep], want[keep]
            assert_close(got, want, atol=1e-5, name=f"{method} seed {seed}")


def test_exported_last_state_takes_any_batch_size():
    module = _Call("last_state", True)
    batch = torch.export.Dim("batch", min=1, max=64)
    with torch.no_grad():
        exported = torch.export.export(module, _histories(0), dynamic_shapes=({0: batch}, {0: batch})).module()
        items, users = _histories(3)
        assert_close(exported(items[:3], users[:3]), module(items[:3], users[:3]), atol=1e-5)


def test_compiled_last_state_matches_eager_with_long_histories():
    module = _Call("last_state", False)
    items = _histories(4, slots=20)[0]  # longer than max_len: the most recent max_len items count
    compiled = torch.compile(module, fullgraph=True, backend="aot_eager")
    with torch.no_grad():
        assert_close(compiled(items, None), module(items, None), atol=1e-5)
    torch._dynamo.reset()


def test_id_dropout_compiles_and_exports_in_eval_mode():
    module = _Call("last_state", True)
    module.encoder = encoder(id_dropout=0.5)  # eval mode: nothing is dropped, nothing drawn
    explanation = torch._dynamo.explain(module)(*_histories(0))
    torch._dynamo.reset()
    assert explanation.graph_break_count == 0, explanation.break_reasons
    with torch.no_grad():
        exported = torch.export.export(module, _histories(0)).module()
        assert_close(exported(*_histories(1)), module(*_histories(1)), atol=1e-5)
        assert_close(module(*_histories(1)), _Call("last_state", True)(*_histories(1)), atol=1e-6)


def test_id_dropout_compiles_without_graph_breaks_in_training_mode():
    module = _Call("forward", True)
    module.encoder = encoder(id_dropout=0.5).train()
    explanation = torch._dynamo.explain(module)(*_histories(0))
    torch._dynamo.reset()
    assert explanation.graph_break_count == 0, explanation.break_reasons


BAD = [
    (lambda items, users: (items.masked_fill(items == items.max(), N), users), r"items: ids must lie in \[0, 40\)"),
    (lambda items, users: (items, users.masked_fill(users == users.max(), 12)), r"users: ids must lie in \[0, 12\)"),
]


@pytest.mark.parametrize("mode", ["eager", "compiled", "exported"])
@pytest.mark.parametrize("method", ["forward", "last_state"])
@pytest.mark.parametrize("corrupt, match", BAD, ids=["item_past_catalog", "unknown_user"])
def test_bad_ids_raise_in_every_mode(mode, method, corrupt, match):
    module = _Call(method, True)
    if mode == "compiled":
        run = torch.compile(module, fullgraph=True, backend="aot_eager")
    elif mode == "exported":
        with torch.no_grad():
            run = torch.export.export(module, _histories(0)).module()
    else:
        run = module
    with torch.no_grad(), pytest.raises(IndexError, match=match):
        run(*corrupt(*_histories(5)))
    torch._dynamo.reset()
