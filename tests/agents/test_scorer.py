"""recengine.agents.scorer: the shared scoring network compiles whole and exports (with its greedy top-k), rejects
bad histories in every mode, and building one leaves the caller's global RNG state alone."""

from __future__ import annotations

import pytest
import torch

from recengine.agents.config import EncoderConfig
from recengine.agents.scorer import Scorer, fresh_scorer, new_scorer
from recengine.data import make_synthetic
from recengine.padding import PAD_ID
from recengine.train import SASRecConfig
from tests.helpers import assert_close

N, K = 30, 5


def _scorer() -> Scorer:
    return new_scorer(N, EncoderConfig(dim=16, max_len=6, num_layers=1, num_heads=2), seed=3).eval()


def _histories(seed: int) -> torch.Tensor:
    """(5, 9) histories longer than max_len, PAD_ID anywhere, one empty row."""
    g = torch.Generator().manual_seed(seed)
    hist = torch.randint(0, N, (5, 9), generator=g)
    hist[torch.rand(5, 9, generator=g) < 0.3] = PAD_ID
    hist[2] = PAD_ID
    return hist


class _TopK(torch.nn.Module):
    def __init__(self, scorer: Scorer):
        super().__init__()
        self.scorer = scorer

    def forward(self, hist):
        return self.scorer.topk(hist, K)


def _modules() -> dict[str, torch.nn.Module]:
    scorer = _scorer()
    return {"forward": scorer, "topk": _TopK(scorer)}


@pytest.mark.parametrize("name", ["forward", "topk"])
def test_compiles_without_graph_breaks(name):
    with torch._dynamo.config.patch(capture_dynamic_output_shape_ops=True):  # the exclusion list's size
        explanation = torch._dynamo.explain(_modules()[name])(_histories(0))
    torch._dynamo.reset()
    assert explanation.graph_break_count == 0, explanation.break_reasons


@pytest.mark.parametrize("name", ["forward", "topk"])
def test_exported_program_matches_eager(name):
    module = _modules()[name]
    with torch.no_grad():
        exported = torch.export.export(module, (_histories(0),)).module()
        got, want = exported(_histories(1)), module(_histories(1))
    for g, w in zip(got, want):
        assert_close(g, w, atol=1e-5) if g.is_floating_point() else torch.testing.assert_close(g, w)


def test_topk_excludes_the_history():
    hist = _histories(4)
    _, ids = _scorer().topk(hist, K)
    for row, slate in zip(hist, ids):
        assert not set(slate.tolist()) & set(row[row >= 0].tolist())


@pytest.mark.parametrize("mode", ["eager", "compiled", "exported"])
def test_item_past_the_catalog_raises_in_every_mode(mode):
    module = _TopK(_scorer())
    if mode == "compiled":
        run = torch.compile(module, fullgraph=True, backend="aot_eager")
    elif mode == "exported":
        with torch.no_grad():
            run = torch.export.export(module, (_histories(0),)).module()
    else:
        run = module
    bad = _histories(5)
    bad[0, 0] = N
    with torch.no_grad(), torch._dynamo.config.patch(capture_dynamic_output_shape_ops=True):
        with pytest.raises(IndexError, match=r"items: ids must lie in \[0, 30\)"):
            run(bad)
    torch._dynamo.reset()


def test_new_scorer_leaves_the_global_rng_state_alone():
    torch.manual_seed(11)
    before = torch.get_rng_state()
    _scorer()
    assert torch.equal(torch.get_rng_state(), before)


def test_new_scorer_weights_depend_on_the_seed_only():
    torch.manual_seed(1)
    a = _scorer().state_dict()
    torch.manual_seed(2)
    b = _scorer().state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_fresh_scorer_leaves_the_global_rng_state_alone():
    data = make_synthetic(20, N, seed=0, min_len=3, max_len=8)
    sasrec = SASRecConfig(dim=16, max_len=6, num_layers=1, num_heads=2)
    torch.manual_seed(11)
    before = torch.get_rng_state()
    fresh_scorer(data, sasrec, seed=0)
    assert torch.equal(torch.get_rng_state(), before)


def test_new_scorer_weights_are_those_of_the_seeded_global_generator():
    from recengine.nn import SequenceEncoder

    torch.manual_seed(3)  # what new_scorer did before it forked the RNG: the same numbers
    want = SequenceEncoder(N, 16, 6, num_layers=1, num_heads=2, dropout=0.0).state_dict()
    got = _scorer().encoder.state_dict()
    assert all(torch.equal(got[k], want[k]) for k in want)
