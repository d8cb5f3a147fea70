"""Bad inputs to the ops, the modules and the optimizer/config classes: each raises the stated exception, names
the argument, and leaves every stored tensor (the weights, the optimizer state) as it was."""

from __future__ import annotations

import math

import pytest
import torch

from recengine.nn.catalog_head import CatalogHead
from recengine.nn.embedding_tables import EmbeddingTables, TableSpec
from recengine.nn.sequence_encoder import SequenceEncoder
from recengine.ops import (
    catalog_cross_entropy,
    catalog_logsumexp,
    catalog_sample,
    catalog_topk,
    embedding_bag,
    embedding_bag_fused_update,
    td_loss,
)
from recengine.optim import SGD, Adam, RowwiseAdagrad
from recengine.train.config import SASRecConfig
from tests.reliability.cases import case, tensors_digest

NAN, INF = math.nan, math.inf

# two tables of 5 rows each, dim 4; a batch of 2: bags [1, 2] [3] (table 0), [0] [4, 4] (table 1)
W = torch.randn(10, 4, generator=torch.Generator().manual_seed(0))
S1 = torch.zeros(10)
M1, M2 = torch.zeros(10, 4), torch.zeros(10, 4)
TO = torch.tensor([0, 5, 10])
IDS = torch.tensor([1, 2, 3, 0, 4, 4])
OFF = torch.tensor([0, 2, 3, 4, 6])
G = torch.ones(2, 8)


def _bag(**kw):
    args = {"weights": W, "table_offsets": TO, "ids": IDS, "offsets": OFF, "per_sample_weights": None, "pooling": "sum"}
    args.update(kw)
    return lambda: embedding_bag(
        args.pop("weights"),
        args.pop("table_offsets"),
        args.pop("ids"),
        args.pop("offsets"),
        args.pop("per_sample_weights"),
        **args,
    )


def _update(**kw):
    base = {
        "grad_output": G,
        "weights": W,
        "table_offsets": TO,
        "ids": IDS,
        "offsets": OFF,
        "optimizer": "sgd",
        "lr": 0.1,
    }
    base.update(kw)

    def call():
        args = dict(base)
        return embedding_bag_fused_update(
            args.pop("grad_output"),
            args.pop("weights"),
            args.pop("table_offsets"),
            args.pop("ids"),
            args.pop("offsets"),
            **args,
        )

    return call


def _adam(**kw):
    return _update(**{"optimizer": "adam", "state1": M1, "state2": M2, **kw})


STRUCTURE = [  # (id, overrides, error, name) shared by the forward and the fused update
    ("weights-f64", {"weights": W.double()}, TypeError, "weights"),
    ("weights-1d", {"weights": W.reshape(-1)}, ValueError, "weights"),
    ("weights-list", {"weights": [[0.0]]}, TypeError, "weights"),
    ("weights-int", {"weights": W.long()}, TypeError, "weights"),
    ("table_offsets-i32", {"table_offsets": TO.int()}, TypeError, "table_offsets"),
    ("table_offsets-2d", {"table_offsets": TO[None]}, ValueError, "table_offsets"),
    ("table_offsets-float", {"table_offsets": TO.float()}, TypeError, "table_offsets"),
    ("table_offsets-none", {"table_offsets": None}, TypeError, "table_offsets"),
    ("ids-float", {"ids": IDS.float()}, TypeError, "ids"),
    ("ids-2d", {"ids": IDS[None]}, ValueError, "ids"),
    ("ids-bool", {"ids": IDS.bool()}, TypeError, "ids"),
    ("ids-numpy", {"ids": IDS.numpy()}, TypeError, "ids"),
    ("ids-out-of-table", {"ids": torch.tensor([1, 2, 5, 0, 4, 4])}, IndexError, "table"),
    ("ids-negative", {"ids": torch.tensor([1, -2, 3, 0, 4, 4])}, IndexError, "table"),
    ("ids-huge", {"ids": torch.tensor([1, 2, 3, 0, 4, 2**40])}, IndexError, "table"),
    ("offsets-i32", {"offsets": OFF.int()}, TypeError, "offsets"),
    ("offsets-2d", {"offsets": OFF[None]}, ValueError, "offsets"),
    ("offsets-decreasing", {"offsets": torch.tensor([0, 3, 2, 4, 6])}, ValueError, "offsets"),
    ("offsets-short-end", {"offsets": torch.tensor([0, 2, 3, 4, 5])}, ValueError, "offsets"),
    ("offsets-past-end", {"offsets": torch.tensor([0, 2, 3, 4, 7])}, ValueError, "offsets"),
    ("offsets-nonzero-start", {"offsets": torch.tensor([1, 2, 3, 4, 6])}, ValueError, "offsets"),
    ("offsets-odd-bags", {"offsets": torch.tensor([0, 2, 3, 6])}, ValueError, "offsets"),
    ("psw-shape", {"per_sample_weights": torch.ones(5)}, ValueError, "per_sample_weights"),
    ("psw-dtype", {"per_sample_weights": torch.ones(6, dtype=torch.float64)}, TypeError, "per_sample_weights"),
    ("psw-2d", {"per_sample_weights": torch.ones(6, 1)}, ValueError, "per_sample_weights"),
    ("pooling-max", {"pooling": "max"}, ValueError, "pooling"),
    ("pooling-int", {"pooling": 1}, TypeError, "pooling"),
]

FORWARD = [case(f"embedding_bag-{i}", _bag(**kw), e, n) for i, kw, e, n in STRUCTURE]
UPDATE = [case(f"fused_update-{i}", _update(**kw), e, n) for i, kw, e, n in STRUCTURE if i != "weights-1d"] + [
    case("fused_update-lr-nan", _update(lr=NAN), ValueError, "lr"),
    case("fused_update-lr-negative", _update(lr=-1.0), ValueError, "lr"),
    case("fused_update-lr-inf", _update(lr=INF), ValueError, "lr"),
    case("fused_update-lr-str", _update(lr="0.1"), TypeError, "lr"),
    case("fused_update-lr-tensor", _update(lr=torch.tensor(0.1)), TypeError, "lr"),
    case("fused_update-lr-bool", _update(lr=True), TypeError, "lr"),
    case("fused_update-eps-inf", _update(optimizer="rowwise_adagrad", state1=S1, eps=INF), ValueError, "eps"),
    case("fused_update-eps-negative", _update(optimizer="rowwise_adagrad", state1=S1, eps=-1e-8), ValueError, "eps"),
    case("fused_update-eps-nan", _update(optimizer="rowwise_adagrad", state1=S1, eps=NAN), ValueError, "eps"),
    case("fused_update-adagrad-lr-nan", _update(optimizer="rowwise_adagrad", state1=S1, lr=NAN), ValueError, "lr"),
    case("fused_update-adagrad-state1-missing", _update(optimizer="rowwise_adagrad"), TypeError, "state1"),
    case(
        "fused_update-adagrad-state1-shape",
        _update(optimizer="rowwise_adagrad", state1=torch.zeros(9)),
        ValueError,
        "state1",
    ),
    case(
        "fused_update-adagrad-state1-f64", _update(optimizer="rowwise_adagrad", state1=S1.double()), TypeError, "state1"
    ),
    case(
        "fused_update-adagrad-state1-noncontiguous",
        _update(optimizer="rowwise_adagrad", state1=torch.zeros(20)[::2]),
        ValueError,
        "state1",
    ),
    case("fused_update-adam-betas-one", _adam(betas=(1.0, 1.0)), ValueError, "betas"),
    case("fused_update-adam-beta2-one", _adam(betas=(0.9, 1.0)), ValueError, "betas"),
    case("fused_update-adam-beta-negative", _adam(betas=(-0.1, 0.9)), ValueError, "betas"),
    case("fused_update-adam-beta-nan", _adam(betas=(NAN, 0.9)), ValueError, "betas"),
    case("fused_update-adam-beta-inf", _adam(betas=(0.9, INF)), ValueError, "betas"),
    case("fused_update-adam-betas-one-value", _adam(betas=(0.9,)), ValueError, "betas"),
    case("fused_update-adam-betas-str", _adam(betas="ab"), ValueError, "betas"),
    case("fused_update-adam-beta-str", _adam(betas=("a", 0.9)), TypeError, "betas"),
    case("fused_update-adam-step-zero", _adam(step=0), ValueError, "step"),
    case("fused_update-adam-step-negative", _adam(step=-3), ValueError, "step"),
    case("fused_update-adam-step-float", _adam(step=1.5), TypeError, "step"),
    case("fused_update-adam-state2-missing", _update(optimizer="adam", state1=M1), TypeError, "state2"),
    case("fused_update-adam-state1-shape", _adam(state1=torch.zeros(10)), ValueError, "state1"),
    case("fused_update-adam-lr-nan", _adam(lr=NAN), ValueError, "lr"),
    case("fused_update-optimizer-unknown", _update(optimizer="lamb"), ValueError, "optimizer"),
    case("fused_update-optimizer-none", _update(optimizer=None), TypeError, "optimizer"),
    case("fused_update-grad-shape", _update(grad_output=torch.ones(2, 4)), ValueError, "grad_output"),
    case("fused_update-grad-f64", _update(grad_output=G.double()), TypeError, "grad_output"),
    case("fused_update-grad-1d", _update(grad_output=torch.ones(16)), ValueError, "grad_output"),
    case("fused_update-weights-noncontiguous", _update(weights=torch.zeros(4, 10).T), ValueError, "weights"),
]


@pytest.mark.parametrize("bad", FORWARD + UPDATE)
def test_embedding_bag_bad_input_is_refused_and_writes_nothing(bad):
    before = tensors_digest(W, S1, M1, M2)
    with pytest.raises(bad.error) as info:
        bad.call()
    assert all(n in str(info.value) for n in bad.names), str(info.value)
    assert tensors_digest(W, S1, M1, M2) == before


# ------------------------------------------------------------------------------------------------ policy
Q = torch.randn(3, 4, generator=torch.Generator().manual_seed(1))
E = torch.randn(6, 4, generator=torch.Generator().manual_seed(2))
TARGET = torch.tensor([0, 5, 2])
EX_OFF, EX_IDS = torch.tensor([0, 1, 1, 2]), torch.tensor([3, 4])

POLICY_COMMON = [  # (id, overrides, error, name) for every catalog op
    ("Q-f64", {"Q": Q.double()}, TypeError, "Q"),
    ("Q-1d", {"Q": Q[0]}, ValueError, "Q"),
    ("Q-nan", {"Q": torch.full((3, 4), NAN)}, ValueError, "Q"),
    ("Q-list", {"Q": [[0.0] * 4]}, TypeError, "Q"),
    ("E-f64", {"E": E.double()}, TypeError, "E"),
    ("E-dim", {"E": torch.randn(6, 3)}, ValueError, "E"),
    ("E-inf", {"E": torch.full((6, 4), INF)}, ValueError, "E"),
    ("bias-shape", {"bias": torch.zeros(5)}, ValueError, "bias"),
    ("bias-f64", {"bias": torch.zeros(6, dtype=torch.float64)}, TypeError, "bias"),
    ("bias-nan", {"bias": torch.full((6,), NAN)}, ValueError, "bias"),
    ("temperature-zero", {"temperature": 0.0}, ValueError, "temperature"),
    ("temperature-negative", {"temperature": -1.0}, ValueError, "temperature"),
    ("temperature-nan", {"temperature": NAN}, ValueError, "temperature"),
    ("temperature-inf", {"temperature": INF}, ValueError, "temperature"),
    ("temperature-str", {"temperature": "1"}, TypeError, "temperature"),
    ("exclude-ids-without-offsets", {"exclude_ids": EX_IDS}, ValueError, "exclude"),
    (
        "exclude-offsets-length",
        {"exclude_offsets": torch.tensor([0, 1, 2]), "exclude_ids": EX_IDS},
        ValueError,
        "exclude_offsets",
    ),
    (
        "exclude-ids-out-of-range",
        {"exclude_offsets": EX_OFF, "exclude_ids": torch.tensor([3, 6])},
        IndexError,
        "exclude_ids",
    ),
    (
        "exclude-ids-negative",
        {"exclude_offsets": EX_OFF, "exclude_ids": torch.tensor([-1, 4])},
        IndexError,
        "exclude_ids",
    ),
    (
        "exclude-offsets-decreasing",
        {"exclude_offsets": torch.tensor([0, 2, 1, 2]), "exclude_ids": EX_IDS},
        ValueError,
        "exclude_offsets",
    ),
]


def _policy(op, **kw):
    args = {"Q": Q, "E": E}
    args.update(kw)

    def call():
        a = dict(args)
        if op is catalog_topk:
            return op(a.pop("Q"), a.pop("E"), a.pop("k", 2), **a)
        if op is catalog_sample:
            return op(a.pop("Q"), a.pop("E"), a.pop("k", 2), a.pop("seed", 0), **a)
        if op is catalog_cross_entropy:
            return op(a.pop("Q"), a.pop("E"), a.pop("target", TARGET), **a)
        return op(a.pop("Q"), a.pop("E"), **a)

    return call


POLICY = (
    [
        case(f"{op.__name__}-{i}", _policy(op, **kw), e, n)
        for op in (catalog_topk, catalog_sample, catalog_logsumexp, catalog_cross_entropy)
        for i, kw, e, n in POLICY_COMMON
    ]
    + [
        case(f"{op.__name__}-{i}", _policy(op, k=k), e, "k")
        for op in (catalog_topk, catalog_sample)
        for i, k, e in (
            ("k-zero", 0, ValueError),
            ("k-negative", -1, ValueError),
            ("k-above-catalog", 7, ValueError),
            ("k-float", 2.0, TypeError),
            ("k-above-remaining", 6, ValueError),
        )
        if not (i == "k-above-remaining")
    ]
    + [
        case(
            "catalog_topk-k-above-non-excluded",
            _policy(catalog_topk, k=6, exclude_offsets=EX_OFF, exclude_ids=EX_IDS),
            ValueError,
            "k",
        ),
        case("catalog_sample-seed-float", _policy(catalog_sample, seed=1.5), TypeError, "seed"),
        case("catalog_sample-seed-str", _policy(catalog_sample, seed="1"), TypeError, "seed"),
        case(
            "catalog_cross_entropy-target-range",
            _policy(catalog_cross_entropy, target=torch.tensor([0, 6, 2])),
            IndexError,
            "target",
        ),
        case(
            "catalog_cross_entropy-target-negative",
            _policy(catalog_cross_entropy, target=torch.tensor([0, -1, 2])),
            IndexError,
            "target",
        ),
        case(
            "catalog_cross_entropy-target-float",
            _policy(catalog_cross_entropy, target=TARGET.float()),
            TypeError,
            "target",
        ),
        case(
            "catalog_cross_entropy-target-shape",
            _policy(catalog_cross_entropy, target=TARGET[:2]),
            ValueError,
            "target",
        ),
        case(
            "catalog_cross_entropy-target-excluded",
            _policy(catalog_cross_entropy, target=torch.tensor([3, 5, 2]), exclude_offsets=EX_OFF, exclude_ids=EX_IDS),
            ValueError,
            "target",
        ),
        case(
            "catalog_cross_entropy-reduction", _policy(catalog_cross_entropy, reduction="avg"), ValueError, "reduction"
        ),
    ]
)


@pytest.mark.parametrize("bad", POLICY)
def test_policy_bad_input_is_refused(bad):
    before = tensors_digest(Q, E)
    with pytest.raises(bad.error) as info:
        bad.call()
    assert all(n in str(info.value) for n in bad.names), str(info.value)
    assert tensors_digest(Q, E) == before


# ------------------------------------------------------------------------------------------------ td_loss
B4 = torch.ones(4)


def _td(**kw):
    args = {
        "q_sa": B4,
        "next_q": B4,
        "reward": B4,
        "done": torch.zeros(4, dtype=torch.bool),
        "discount": B4 * 0.9,
        "weight": B4,
    }
    args.update(kw)
    names = ("q_sa", "next_q", "reward", "done", "discount", "weight")
    return lambda: td_loss(*(args[n] for n in names), **{k: v for k, v in args.items() if k not in names})


TD = [
    case(f"td_loss-{n}-{what}", _td(**{n: t}), e, n)
    for n in ("q_sa", "next_q", "reward", "discount", "weight")
    for what, t, e in (
        ("f64", B4.double(), TypeError),
        ("shape", torch.ones(3), ValueError),
        ("2d", torch.ones(4, 1), ValueError),
        ("list", [1.0] * 4, TypeError),
    )
] + [
    case("td_loss-done-f64", _td(done=torch.zeros(4, dtype=torch.float64)), TypeError, "done"),
    case("td_loss-done-shape", _td(done=torch.zeros(3, dtype=torch.bool)), ValueError, "done"),
    case("td_loss-huber-zero", _td(huber_delta=0.0), ValueError, "huber_delta"),
    case("td_loss-huber-nan", _td(huber_delta=NAN), ValueError, "huber_delta"),
    case("td_loss-huber-negative", _td(huber_delta=-1.0), ValueError, "huber_delta"),
    case("td_loss-alpha-negative", _td(alpha=-0.5), ValueError, "alpha"),
    case("td_loss-alpha-nan", _td(alpha=NAN), ValueError, "alpha"),
    case("td_loss-eps-negative", _td(eps=-1.0), ValueError, "eps"),
    case("td_loss-eps-nan", _td(eps=NAN), ValueError, "eps"),
    case(
        "td_loss-empty",
        _td(
            **{n: torch.ones(0) for n in ("q_sa", "next_q", "reward", "discount", "weight")},
            done=torch.zeros(0, dtype=torch.bool),
        ),
        ValueError,
        "q_sa",
    ),
]


@pytest.mark.parametrize("bad", TD)
def test_td_loss_bad_input_is_refused(bad):
    with pytest.raises(bad.error) as info:
        bad.call()
    assert all(n in str(info.value) for n in bad.names), str(info.value)


# ------------------------------------------------------------------------------ modules, optimizers, config
MODULES = [
    case("TableSpec-name-empty", lambda: TableSpec("", 5, 4), TypeError, "name"),
    case("TableSpec-name-int", lambda: TableSpec(3, 5, 4), TypeError, "name"),
    case("TableSpec-rows-zero", lambda: TableSpec("t", 0, 4), ValueError, "num_rows"),
    case("TableSpec-rows-float", lambda: TableSpec("t", 5.0, 4), TypeError, "num_rows"),
    case("TableSpec-dim-negative", lambda: TableSpec("t", 5, -4), ValueError, "dim"),
    case("TableSpec-dim-bool", lambda: TableSpec("t", 5, True), TypeError, "dim"),
    case("EmbeddingTables-no-specs", lambda: EmbeddingTables([]), ValueError, "specs"),
    case(
        "EmbeddingTables-duplicate-names",
        lambda: EmbeddingTables([TableSpec("a", 2, 4), TableSpec("a", 3, 4)]),
        ValueError,
        "a",
    ),
    case(
        "EmbeddingTables-pooling", lambda: EmbeddingTables([TableSpec("a", 2, 4)], pooling="max"), ValueError, "pooling"
    ),
    case("CatalogHead-items-zero", lambda: CatalogHead(0, 4), ValueError, "num_items"),
    case("CatalogHead-dim-zero", lambda: CatalogHead(5, 0), ValueError, "dim"),
    case("SequenceEncoder-heads", lambda: SequenceEncoder(5, 6, 4, num_heads=4), ValueError, "num_heads"),
    case("SequenceEncoder-items-zero", lambda: SequenceEncoder(0, 8, 4), ValueError, "num_items"),
    case(
        "SequenceEncoder-features-without-ids",
        lambda: SequenceEncoder(5, 8, 4, item_feature_tables=[("g", 3)]),
        ValueError,
        "item_feature_ids",
    ),
    case("SGD-lr-nan", lambda: SGD(NAN), ValueError, "lr"),
    case("SGD-lr-inf", lambda: SGD(INF), ValueError, "lr"),
    case("SGD-lr-negative", lambda: SGD(-0.1), ValueError, "lr"),
    case("SGD-lr-str", lambda: SGD("0.1"), TypeError, "lr"),
    case("RowwiseAdagrad-eps-zero", lambda: RowwiseAdagrad(0.1, eps=0.0), ValueError, "eps"),
    case("RowwiseAdagrad-eps-inf", lambda: RowwiseAdagrad(0.1, eps=INF), ValueError, "eps"),
    case("Adam-betas-one", lambda: Adam(0.1, betas=(1.0, 1.0)), ValueError, "betas"),
    case("Adam-betas-nan", lambda: Adam(0.1, betas=(NAN, 0.9)), ValueError, "betas"),
    case("Adam-betas-short", lambda: Adam(0.1, betas=(0.9,)), ValueError, "betas"),
    case("Adam-betas-str", lambda: Adam(0.1, betas=("a", "b")), ValueError, "betas"),
    case("Adam-lr-nan", lambda: Adam(NAN), ValueError, "lr"),
] + [
    case(f"SASRecConfig-{field}-{value!r}", (lambda f=field, v=value: SASRecConfig(**{f: v})), error, field)
    for field, value, error in (
        ("dim", 0, ValueError),
        ("dim", 2.5, TypeError),
        ("max_len", -1, ValueError),
        ("num_layers", 0, ValueError),
        ("num_heads", 0, ValueError),
        ("num_heads", 3, ValueError),
        ("feature_dim", 0, ValueError),
        ("batch_size", 0, ValueError),
        ("batch_size", "32", TypeError),
        ("max_epochs", 0, ValueError),
        ("patience", 0, ValueError),
        ("stride", 0, ValueError),
        ("seed", -1, ValueError),
        ("seed", 1.5, TypeError),
        ("dropout", 1.0, ValueError),
        ("dropout", -0.1, ValueError),
        ("dropout", NAN, ValueError),
        ("lr", 0.0, ValueError),
        ("lr", NAN, ValueError),
        ("lr", INF, ValueError),
        ("weight_decay", -1.0, ValueError),
        ("clip", -1.0, ValueError),
        ("clip", NAN, ValueError),
        ("max_seconds", 0.0, ValueError),
        ("max_seconds", NAN, ValueError),
        ("item_features", "yes", TypeError),
        ("user_features", 1, TypeError),
    )
]


@pytest.mark.parametrize("bad", MODULES)
def test_module_and_setting_bad_input_is_refused(bad):
    with pytest.raises(bad.error) as info:
        bad.call()
    assert all(n in str(info.value) for n in bad.names), str(info.value)


def test_embedding_tables_forward_bad_ids_leave_the_weights():
    tables = EmbeddingTables([TableSpec("a", 3, 4), TableSpec("b", 2, 4)], optimizer=SGD(0.1), seed=0)
    before = tensors_digest(*tables.state_dict().values())
    with pytest.raises(IndexError, match="b"):
        tables(torch.tensor([0, 2]), torch.tensor([0, 1, 2]))
    assert tensors_digest(*tables.state_dict().values()) == before
