"""recengine.nn.CatalogHead under torch.compile and torch.export: no graph breaks, the same results as eager
(beside tests/nn/test_catalog_head.py on main, which checks the head against the reference)."""

from __future__ import annotations

import pytest
import torch

from recengine.nn import CatalogHead


def _calls():
    """Each scoring method of the head as a function of (head, states, exclude_offsets, exclude_ids)."""
    return {
        "topk": lambda h, q, off, ex: h.topk(q, 5, exclude_offsets=off, exclude_ids=ex),
        "sample": lambda h, q, off, ex: h.sample(q, 3, 7, exclude_offsets=off, exclude_ids=ex),
        "logsumexp": lambda h, q, off, ex: h.logsumexp(q, exclude_offsets=off, exclude_ids=ex),
        "loss": lambda h, q, off, ex: h.loss(q, torch.tensor([1, 2, 4]), exclude_offsets=off, exclude_ids=ex),
        "logits": lambda h, q, off, ex: h(q),
    }


class _HeadCall(torch.nn.Module):
    def __init__(self, head: CatalogHead, fn):
        super().__init__()
        self.head, self.fn = head, fn

    def forward(self, states, exclude_offsets, exclude_ids):
        return self.fn(self.head, states, exclude_offsets, exclude_ids)


def _head() -> CatalogHead:
    head = CatalogHead(30, 8, bias=True, own_table=True)
    with torch.no_grad():  # fixed values: the test does not depend on the global RNG
        head.weight.copy_(torch.randn(30, 8, generator=torch.Generator().manual_seed(3)))
        head.bias.copy_(torch.linspace(-1, 1, 30))
    return head


def _args(seed: int):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(3, 8, generator=g), torch.tensor([0, 1, 1, 3]), torch.tensor([3, 5, 6])


@pytest.mark.parametrize("name", list(_calls()))
def test_compiles_without_graph_breaks(name):
    explanation = torch._dynamo.explain(_HeadCall(_head(), _calls()[name]))(*_args(0))
    torch._dynamo.reset()
    assert explanation.graph_break_count == 0, explanation.break_reasons


@pytest.mark.parametrize("name", list(_calls()))
def test_exported_program_matches_eager(name):
    module = _HeadCall(_head(), _calls()[name])
    exported = torch.export.export(module, _args(0))
    got, want = exported.module()(*_args(1)), module(*_args(1))
    for g, w in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
        assert torch.equal(g, w)


def test_compiled_loss_gradients_match_eager():
    head = _head()
    states = _args(0)[0].requires_grad_()
    targets = torch.tensor([1, 2, 4])
    compiled = torch.compile(lambda q: head.loss(q, targets), fullgraph=True, backend="aot_eager")
    compiled(states).backward()
    got = (states.grad.clone(), head.weight.grad.clone(), head.bias.grad.clone())
    states.grad, head.weight.grad, head.bias.grad = None, None, None
    head.loss(states, targets).backward()
    torch._dynamo.reset()
    for g, w in zip(got, (states.grad, head.weight.grad, head.bias.grad)):
        torch.testing.assert_close(g, w)
