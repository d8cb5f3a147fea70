import pytest
import torch

from recengine.nn.gather_rows import gather_rows


@pytest.mark.parametrize("shape", [(40, 8), (40,)])
def test_the_rows_and_their_gradient_are_those_of_indexing(shape):
    torch.manual_seed(0)
    table = torch.randn(*shape, dtype=torch.float64)
    ids = torch.randint(0, 40, (6, 5))  # repeats: the gradient sums them
    a, b = table.clone().requires_grad_(), table.clone().requires_grad_()
    out = gather_rows(a, ids)
    assert out.shape == b[ids].shape and torch.equal(out, b[ids])
    upstream = torch.randn(out.shape, dtype=torch.float64)
    (out * upstream).sum().backward()
    (b[ids] * upstream).sum().backward()
    torch.testing.assert_close(a.grad, b.grad)


def test_the_backward_gives_the_same_bits_every_call():
    """Many rows on several threads: indexing's backward adds them with atomics in a timing-dependent order."""
    torch.manual_seed(0)
    table = torch.randn(1682, 64, requires_grad=True)
    ids = torch.randint(0, 1682, (256, 50))
    upstream = torch.randn(256, 50, 64)

    def grad():
        table.grad = None
        (gather_rows(table, ids) * upstream).sum().backward()
        return table.grad.clone()

    first = grad()
    assert all(torch.equal(grad(), first) for _ in range(10))


def test_bad_tables_and_ids_are_refused():
    with pytest.raises(ValueError, match="table"):
        gather_rows(torch.zeros(2, 3, 4), torch.tensor([0]))
    with pytest.raises(IndexError):
        gather_rows(torch.zeros(5, 3), torch.tensor([5]))
