"""recengine.nn.SequenceRecommender: its loss and user states compile whole, export, and reject bad input."""

from __future__ import annotations

import pytest
import torch

from recengine.nn import CatalogHead
from recengine.nn.sequence_recommender import SequenceRecommender
from recengine.padding import PAD_ID
from tests.helpers import assert_close
from tests.nn.test_sequence_encoder import N, encoder


def _model() -> SequenceRecommender:
    return SequenceRecommender(encoder(), CatalogHead(N, 16), use_users=True)


def _batch(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(inputs, targets, users): left-aligned windows, the next item as target, PAD_ID after each row's end."""
    g = torch.Generator().manual_seed(seed)
    seq = torch.randint(0, N, (5, 7), generator=g)
    lengths = torch.tensor([7, 4, 1, 6, 3])
    seq[torch.arange(7) >= lengths.unsqueeze(1)] = PAD_ID
    return seq[:, :-1].contiguous(), seq[:, 1:].contiguous(), torch.randint(0, 12, (5,), generator=g)


class _Loss(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, inputs, targets, users):
        return self.model.loss(inputs, targets, users)


class _UserStates(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, histories, users):
        return self.model.user_states(histories, users)


def test_loss_compiles_without_graph_breaks():
    with torch._dynamo.config.patch(capture_dynamic_output_shape_ops=True):
        explanation = torch._dynamo.explain(_Loss(_model()))(*_batch(0))
    torch._dynamo.reset()
    assert explanation.graph_break_count == 0, explanation.break_reasons


def test_user_states_compile_without_graph_breaks():
    inputs, _, users = _batch(0)
    explanation = torch._dynamo.explain(_UserStates(_model()))(inputs, users)
    torch._dynamo.reset()
    assert explanation.graph_break_count == 0, explanation.break_reasons


def test_exported_loss_matches_eager():
    module = _Loss(_model())
    exported = torch.export.export(module, _batch(0)).module()
    assert_close(exported(*_batch(1)), module(*_batch(1)), atol=1e-6)


def test_exported_user_states_match_eager():
    module = _UserStates(_model())
    inputs, _, users = _batch(0)
    exported = torch.export.export(module, (inputs, users)).module()
    inputs, _, users = _batch(2)
    assert_close(exported(inputs, users), module(inputs, users), atol=1e-5)


def test_compiled_loss_gradients_match_eager():
    eager, compiled_model = _model(), _model()
    compiled = torch.compile(_Loss(compiled_model), fullgraph=True, backend="aot_eager")
    with torch._dynamo.config.patch(capture_dynamic_output_shape_ops=True):
        compiled(*_batch(3)).backward()
    torch._dynamo.reset()
    eager.loss(*_batch(3)).backward()
    for (name, p), q in zip(eager.named_parameters(), compiled_model.parameters()):
        if p.grad is None:  # a parameter the loss does not reach (the empty-history state)
            assert q.grad is None, name
        else:
            assert_close(q.grad, p.grad, atol=1e-5, name=name)


def test_all_pad_targets_raise_naming_targets():
    inputs, targets, users = _batch(0)
    with pytest.raises(ValueError, match="targets: every target is PAD_ID"):
        _model().loss(inputs, torch.full_like(targets, PAD_ID), users)


@pytest.mark.parametrize("mode", ["eager", "exported"])
def test_target_past_the_catalog_raises(mode):
    module = _Loss(_model())
    run = torch.export.export(module, _batch(0)).module() if mode == "exported" else module
    inputs, targets, users = _batch(4)
    with pytest.raises(IndexError):
        run(inputs, targets.masked_fill(targets == targets.max(), N), users)


def test_the_lean_path_gives_the_same_dense_gradients():
    """sparse_input_grad: the history lookup's sparse gradient and the catalog loss's dense one meet in one dense
    gradient per parameter, equal to the standard path's."""
    x = torch.randint(0, N, (4, 6))
    y = torch.randint(0, N, (4, 6))
    y[0, :2] = PAD_ID
    grads = []
    for sparse in (False, True):
        torch.manual_seed(0)
        model = SequenceRecommender(encoder(features=False), CatalogHead(N, 16), use_users=False)
        model.encoder.sparse_input_grad = sparse
        model.loss(x, y).backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and "encoder.item_embedding" in grads[1]
    for name, g in grads[1].items():
        assert not g.is_sparse, name
        torch.testing.assert_close(g, grads[0][name], rtol=1e-5, atol=1e-6, msg=name)
