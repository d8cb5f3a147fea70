"""recengine.ops.embedding_bag: pooled lookup over many tables in one call (the table-batched layout).

One job, the family's public ops (lookup, backward, fused update): long because each op carries its
registration, fake implementation, autograd and the one validation helper they share.

Input contract (the same everywhere in recengine):
  weights        (R, D) float32: every table's rows stacked; table t owns rows
                 [table_offsets[t], table_offsets[t+1])
  table_offsets  (T+1,) int64, nondecreasing, within [0, R]
  ids            (N,) int32 or int64, local to their table (0 <= id < rows of the table)
  offsets        (T*B+1,) int64, table-major: the bag of sample b in table t is bag j = t*B + b,
                 holding ids[offsets[j]:offsets[j+1]]; offsets[0] == 0, offsets[-1] == N, nondecreasing
  per_sample_weights  optional (N,) float32, multiplies each id's row before pooling
  pooling        "sum" or "mean" (an empty bag pools to zeros; mean divides by the bag's id count)
Output (B, T*D) float32, table t in columns [t*D, (t+1)*D).

Registered ops (namespace "recengine"; CPU -> recengine._C, CUDA -> Triton; each with a fake):
  embedding_bag                 the forward; autograd gives the dense gradient of `weights` and the
                                gradient of `per_sample_weights`
  embedding_bag_backward        dense (R, D) gradient of `weights` (duplicates summed per row)
  embedding_bag_psw_backward    (N,) gradient of `per_sample_weights`
  embedding_bag_fused_update    backward fused with SGD / row-wise Adagrad / lazy Adam, in place on
                                weights and state: no dense gradient is built (used by
                                recengine.nn.EmbeddingTables)

Validation happens here, once, before any kernel runs: types, devices, shapes, and the values
(offsets monotonic from 0 to N, table_offsets valid, every id inside its table -> IndexError naming the
table and the id). Under torch.compile and torch.export the Python value checks are not traced; the ops
check the values themselves: the C++ kernels check the layout and the ids and raise ValueError /
IndexError naming the id and the table's index, the CUDA forward's kernel reports bad ids and the op
raises, the Triton update kernels mask out-of-range ids. No backend ever touches memory outside the
tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NoReturn

import torch
from torch import Tensor

from recengine._native import as_array, cpu_ops
from recengine.ops._checks import (
    FLOAT_DTYPES,
    INDEX_DTYPES,
    check_choice,
    check_int,
    check_number,
    check_same_device,
    check_tensor,
)
from recengine.ops._triton import triton_kernels

POOLINGS = ("sum", "mean")
#: optimizer name -> kernel code (0 is the dense gradient)
OPTIMIZERS = {"sgd": 1, "rowwise_adagrad": 2, "adam": 3}

__all__ = [
    "embedding_bag",
    "embedding_bag_fused_update",
    "check_embedding_bag_inputs",
    "check_embedding_bag_values",
    "POOLINGS",
    "OPTIMIZERS",
]


# ------------------------------------------------------------------------------------ validation
def _sizes(table_offsets: Tensor, offsets: Tensor) -> tuple[int, int]:
    num_tables = table_offsets.shape[0] - 1
    return num_tables, (offsets.shape[0] - 1) // num_tables


def _check_structure(weights, table_offsets, ids, offsets, per_sample_weights, pooling) -> None:
    check_tensor("weights", weights, dtypes=FLOAT_DTYPES, ndim=2)
    check_tensor("table_offsets", table_offsets, dtypes=(torch.int64,), ndim=1)
    check_tensor("ids", ids, dtypes=INDEX_DTYPES, ndim=1)
    check_tensor("offsets", offsets, dtypes=(torch.int64,), ndim=1)
    if per_sample_weights is not None:
        check_tensor("per_sample_weights", per_sample_weights, dtypes=FLOAT_DTYPES, shape=(ids.shape[0],))
    check_choice("pooling", pooling, POOLINGS)
    check_same_device(
        weights=weights, table_offsets=table_offsets, ids=ids, offsets=offsets, per_sample_weights=per_sample_weights
    )
    if weights.shape[1] < 1:
        raise ValueError(f"weights: needs at least one column, got shape {tuple(weights.shape)}")
    if table_offsets.shape[0] < 2:
        raise ValueError(f"table_offsets: expected T+1 >= 2 entries, got {table_offsets.shape[0]}")
    num_tables = table_offsets.shape[0] - 1
    if offsets.shape[0] < 1 or (offsets.shape[0] - 1) % num_tables != 0:
        raise ValueError(f"offsets: expected length T*B+1 with T={num_tables} tables, got {offsets.shape[0]}")


def _table_label(t: int, table_names: Sequence[str] | None) -> str:
    if table_names is not None and t < len(table_names):
        return f"table {t} ({table_names[t]!r})"
    return f"table {t}"


def _raise_bad_id(
    pos: int, table_offsets: Tensor, ids: Tensor, offsets: Tensor, table_names: Sequence[str] | None
) -> None:
    num_tables, batch = _sizes(table_offsets, offsets)
    bag = int(torch.searchsorted(offsets, torch.tensor(pos, device=offsets.device), right=True)) - 1
    t = min(bag // max(batch, 1), num_tables - 1)
    rows_t = int(table_offsets[t + 1] - table_offsets[t])
    raise IndexError(f"ids[{pos}] = {int(ids[pos])} is outside {_table_label(t, table_names)}, which has {rows_t} rows")


def _check_values(
    num_rows: int, table_offsets: Tensor, ids: Tensor, offsets: Tensor, table_names: Sequence[str] | None
) -> None:
    """The checks that read the data: table_offsets within [0, R] and nondecreasing, offsets nondecreasing
    from 0 to N, every id inside its table. CPU: one C++ pass (no torch parallel region right before the
    kernel: two OpenMP runtimes, torch's and ours, would then fight over the cores). Elsewhere:
    vectorised torch checks, a few host syncs, no loop over ids or bags."""
    if ids.device.type == "cpu":
        pos = cpu_ops().embedding_bag_find_bad_id(
            as_array(table_offsets.contiguous(), "table_offsets"),
            as_array(ids.contiguous(), "ids"),
            as_array(offsets.contiguous(), "offsets"),
            num_rows,
        )
        if pos >= 0:
            _raise_bad_id(pos, table_offsets, ids, offsets, table_names)
        return
    _check_values_torch(num_rows, table_offsets, ids, offsets, table_names)


def _check_values_torch(
    num_rows: int, table_offsets: Tensor, ids: Tensor, offsets: Tensor, table_names: Sequence[str] | None
) -> None:
    """All value checks as device reductions read back in one host sync (on a GPU every sync costs tens of
    microseconds); only when one fails does `_explain_bad_values` find the first culprit for the message."""
    num_tables, batch = _sizes(table_offsets, offsets)
    n = ids.shape[0]
    rows = table_offsets[1:] - table_offsets[:-1]
    seg = (offsets[::batch] if batch > 0 else offsets[:1].expand(num_tables + 1)).contiguous()
    flags = [table_offsets[0] < 0, table_offsets[-1] > num_rows, (rows < 0).any(), seg[0] != 0, seg[-1] != n]
    if offsets.shape[0] > 1:
        flags.append((offsets[1:] < offsets[:-1]).any())
    if n:
        # each table's ids are contiguous: ids[seg[t]:seg[t+1]]; the table of position i is the last t with
        # seg[t] <= i (empty tables never match)
        table_of = torch.searchsorted(seg, torch.arange(n, device=ids.device, dtype=seg.dtype), right=True) - 1
        limit = rows[table_of.clamp(0, num_tables - 1)]
        flags.append(((ids < 0) | (ids >= limit)).any())
    if any(torch.stack(flags).tolist()):
        _explain_bad_values(num_rows, table_offsets, ids, offsets, table_names)


def _explain_bad_values(
    num_rows: int, table_offsets: Tensor, ids: Tensor, offsets: Tensor, table_names: Sequence[str] | None
) -> NoReturn:
    """Called once a check has failed: raises the error that names the first culprit."""
    _first_bad_value(num_rows, table_offsets, ids, offsets, table_names)
    raise ValueError("ids/offsets/table_offsets: inconsistent values")  # not reached: the line above names it


def _first_bad_value(
    num_rows: int, table_offsets: Tensor, ids: Tensor, offsets: Tensor, table_names: Sequence[str] | None
) -> None:
    num_tables, batch = _sizes(table_offsets, offsets)
    bounds_t = table_offsets.tolist()
    if bounds_t[0] < 0 or bounds_t[-1] > num_rows or any(b < a for a, b in zip(bounds_t, bounds_t[1:])):
        raise ValueError(f"table_offsets: must be nondecreasing within [0, {num_rows}] (weights rows), got {bounds_t}")
    if offsets.shape[0] > 1 and bool((offsets[1:] < offsets[:-1]).any()):
        j = int((offsets[1:] < offsets[:-1]).nonzero()[0, 0])
        raise ValueError(
            f"offsets: must be nondecreasing, but offsets[{j + 1}] = {int(offsets[j + 1])} < "
            f"offsets[{j}] = {int(offsets[j])}"
        )
    # each table's ids are contiguous: ids[offsets[t*B] : offsets[(t+1)*B]]
    seg = offsets[::batch].tolist() if batch > 0 else [int(offsets[0])] * (num_tables + 1)
    if seg[0] != 0:
        raise ValueError(f"offsets: offsets[0] must be 0, got {seg[0]}")
    if seg[-1] != ids.shape[0]:
        raise ValueError(f"offsets: offsets[-1] must equal len(ids) = {ids.shape[0]}, got {seg[-1]}")
    tables = [t for t in range(num_tables) if seg[t + 1] > seg[t]]
    if not tables:
        return
    extremes = torch.stack([torch.stack(torch.aminmax(ids[seg[t] : seg[t + 1]])) for t in tables]).tolist()
    for t, (lo, hi) in zip(tables, extremes):
        rows_t = bounds_t[t + 1] - bounds_t[t]
        if lo < 0 or hi >= rows_t:
            part = ids[seg[t] : seg[t + 1]]
            k = int(((part < 0) | (part >= rows_t)).nonzero()[0, 0])
            _raise_bad_id(seg[t] + k, table_offsets, ids, offsets, table_names)


def check_embedding_bag_values(
    num_rows: int, table_offsets: Tensor, ids: Tensor, offsets: Tensor, table_names: Sequence[str] | None = None
) -> None:
    """The value checks alone (layout and ids against `num_rows` rows), on the device the tensors are on:
    a caller holding a batch on the host checks it there, with no device sync, before copying it over."""
    _check_values(num_rows, table_offsets, ids, offsets, table_names)


def check_embedding_bag_inputs(
    weights: Tensor,
    table_offsets: Tensor,
    ids: Tensor,
    offsets: Tensor,
    per_sample_weights: Tensor | None = None,
    *,
    pooling: str = "sum",
    table_names: Sequence[str] | None = None,
    check_values: bool = True,
    for_forward: bool = False,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor | None]:
    """Validate the op's inputs; returns them contiguous (ids keep their dtype).

    Raises TypeError (wrong type/dtype), ValueError (shape, device, layout) or IndexError (an id outside
    its table, naming the table and the id). `table_names` only improves the messages. `for_forward`: the
    caller runs the forward op next, which on CUDA checks the values inside its kernel (no extra launches),
    so they are not checked here.
    """
    _check_structure(weights, table_offsets, ids, offsets, per_sample_weights, pooling)
    if for_forward and weights.is_cuda:
        check_values = False
    if check_values and not torch.compiler.is_compiling():
        _check_values(weights.shape[0], table_offsets, ids, offsets, table_names)
    psw = None if per_sample_weights is None else per_sample_weights.contiguous()
    return weights.contiguous(), table_offsets.contiguous(), ids.contiguous(), offsets.contiguous(), psw


# ------------------------------------------------------------------------------------ the ops
@torch.library.custom_op("recengine::embedding_bag", mutates_args=(), device_types="cpu")
def _embedding_bag_op(
    weights: Tensor,
    table_offsets: Tensor,
    ids: Tensor,
    offsets: Tensor,
    per_sample_weights: Tensor | None,
    pooling: str,
) -> Tensor:
    num_tables, batch = _sizes(table_offsets, offsets)
    weights, table_offsets, ids, offsets = (x.contiguous() for x in (weights, table_offsets, ids, offsets))
    psw = None if per_sample_weights is None else as_array(per_sample_weights.contiguous(), "per_sample_weights")
    out = torch.empty(batch, num_tables * weights.shape[1], dtype=weights.dtype)
    cpu_ops().embedding_bag_forward(
        as_array(weights, "weights"),
        as_array(table_offsets, "table_offsets"),
        as_array(ids, "ids"),
        as_array(offsets, "offsets"),
        psw,
        pooling == "mean",
        as_array(out, "out"),
    )
    return out


@_embedding_bag_op.register_kernel("cuda")
def _embedding_bag_cuda(weights, table_offsets, ids, offsets, per_sample_weights, pooling):
    kernels = triton_kernels("embedding_bag")
    psw = None if per_sample_weights is None else per_sample_weights.contiguous()
    weights, table_offsets, ids, offsets = (x.contiguous() for x in (weights, table_offsets, ids, offsets))
    out, err = kernels.embedding_bag(weights, table_offsets, ids, offsets, psw, pooling == "mean")
    if out.numel() == 0:  # nothing launched, so nothing checked the layout
        _check_values_torch(weights.shape[0], table_offsets, ids, offsets, None)
    elif min(err.tolist()) != kernels.NO_ERROR:  # the kernel's report: one host sync
        _explain_bad_values(weights.shape[0], table_offsets, ids, offsets, None)
    return out


@_embedding_bag_op.register_fake
def _embedding_bag_fake(weights, table_offsets, ids, offsets, per_sample_weights, pooling):
    num_tables, batch = _sizes(table_offsets, offsets)
    return weights.new_empty(batch, num_tables * weights.shape[1])


@torch.library.custom_op("recengine::embedding_bag_backward", mutates_args=(), device_types="cpu")
def _backward_op(
    grad_output: Tensor,
    weights: Tensor,
    table_offsets: Tensor,
    ids: Tensor,
    offsets: Tensor,
    per_sample_weights: Tensor | None,
    pooling: str,
) -> Tensor:
    grad_weights = torch.zeros_like(weights, memory_format=torch.contiguous_format)
    psw = None if per_sample_weights is None else as_array(per_sample_weights.contiguous(), "per_sample_weights")
    empty = torch.empty(0, dtype=weights.dtype)
    cpu_ops().embedding_bag_update(
        as_array(grad_output.contiguous(), "grad_output"),
        as_array(grad_weights, "grad_weights"),
        as_array(table_offsets.contiguous(), "table_offsets"),
        as_array(ids.contiguous(), "ids"),
        as_array(offsets.contiguous(), "offsets"),
        psw,
        pooling == "mean",
        0,
        as_array(empty, "state1"),
        as_array(empty, "state2"),
        0.0,
        0.0,
        0.0,
        0.0,
        1.0,
        1.0,
    )
    return grad_weights


@_backward_op.register_kernel("cuda")
def _backward_cuda(grad_output, weights, table_offsets, ids, offsets, per_sample_weights, pooling):
    kernels = triton_kernels("embedding_bag")
    psw = None if per_sample_weights is None else per_sample_weights.contiguous()
    return kernels.embedding_bag_backward(
        grad_output.contiguous(),
        weights,
        table_offsets.contiguous(),
        ids.contiguous(),
        offsets.contiguous(),
        psw,
        pooling == "mean",
    )


@_backward_op.register_fake
def _backward_fake(grad_output, weights, table_offsets, ids, offsets, per_sample_weights, pooling):
    return torch.empty_like(weights, memory_format=torch.contiguous_format)


@torch.library.custom_op("recengine::embedding_bag_psw_backward", mutates_args=(), device_types="cpu")
def _psw_backward_op(
    grad_output: Tensor, weights: Tensor, table_offsets: Tensor, ids: Tensor, offsets: Tensor, pooling: str
) -> Tensor:
    grad_psw = torch.empty(ids.shape[0], dtype=weights.dtype)
    cpu_ops().embedding_bag_backward_psw(
        as_array(grad_output.contiguous(), "grad_output"),
        as_array(weights.contiguous(), "weights"),
        as_array(table_offsets.contiguous(), "table_offsets"),
        as_array(ids.contiguous(), "ids"),
        as_array(offsets.contiguous(), "offsets"),
        pooling == "mean",
        as_array(grad_psw, "grad_psw"),
    )
    return grad_psw


@_psw_backward_op.register_kernel("cuda")
def _psw_backward_cuda(grad_output, weights, table_offsets, ids, offsets, pooling):
    kernels = triton_kernels("embedding_bag")
    return kernels.embedding_bag_psw_backward(
        grad_output.contiguous(),
        weights.contiguous(),
        table_offsets.contiguous(),
        ids.contiguous(),
        offsets.contiguous(),
        pooling == "mean",
    )


@_psw_backward_op.register_fake
def _psw_backward_fake(grad_output, weights, table_offsets, ids, offsets, pooling):
    return weights.new_empty(ids.shape[0])


def _setup_context(ctx, inputs, output):
    weights, table_offsets, ids, offsets, per_sample_weights, pooling = inputs
    ctx.save_for_backward(weights, table_offsets, ids, offsets, per_sample_weights)
    ctx.pooling = pooling


def _backward(ctx, grad_output):
    weights, table_offsets, ids, offsets, per_sample_weights = ctx.saved_tensors
    grad_weights = grad_psw = None
    if ctx.needs_input_grad[0]:
        grad_weights = torch.ops.recengine.embedding_bag_backward(
            grad_output, weights, table_offsets, ids, offsets, per_sample_weights, ctx.pooling
        )
    if per_sample_weights is not None and ctx.needs_input_grad[4]:
        grad_psw = torch.ops.recengine.embedding_bag_psw_backward(
            grad_output, weights, table_offsets, ids, offsets, ctx.pooling
        )
    return grad_weights, None, None, None, grad_psw, None


torch.library.register_autograd("recengine::embedding_bag", _backward, setup_context=_setup_context)


@torch.library.custom_op(
    "recengine::embedding_bag_fused_update", mutates_args=("weights", "state1", "state2"), device_types="cpu"
)
def _fused_update_op(
    grad_output: Tensor,
    weights: Tensor,
    table_offsets: Tensor,
    ids: Tensor,
    offsets: Tensor,
    per_sample_weights: Tensor | None,
    pooling: str,
    optimizer: str,
    state1: Tensor,
    state2: Tensor,
    lr: float,
    eps: float,
    beta1: float,
    beta2: float,
    step: Tensor,
) -> None:
    # `step` is a tensor so that a module's step counter stays in the graph under torch.compile; it is read
    # here, inside the op, where the data is real
    step = int(step)
    psw = None if per_sample_weights is None else as_array(per_sample_weights.contiguous(), "per_sample_weights")
    cpu_ops().embedding_bag_update(
        as_array(grad_output.contiguous(), "grad_output"),
        as_array(weights, "weights"),
        as_array(table_offsets.contiguous(), "table_offsets"),
        as_array(ids.contiguous(), "ids"),
        as_array(offsets.contiguous(), "offsets"),
        psw,
        pooling == "mean",
        OPTIMIZERS[optimizer],
        as_array(state1, "state1"),
        as_array(state2, "state2"),
        lr,
        eps,
        beta1,
        beta2,
        1.0 - beta1**step,
        1.0 - beta2**step,
    )


@_fused_update_op.register_kernel("cuda")
def _fused_update_cuda(
    grad_output,
    weights,
    table_offsets,
    ids,
    offsets,
    per_sample_weights,
    pooling,
    optimizer,
    state1,
    state2,
    lr,
    eps,
    beta1,
    beta2,
    step,
):
    kernels = triton_kernels("embedding_bag")
    step = int(step)
    psw = None if per_sample_weights is None else per_sample_weights.contiguous()
    kernels.embedding_bag_fused_update(
        grad_output.contiguous(),
        weights,
        table_offsets.contiguous(),
        ids.contiguous(),
        offsets.contiguous(),
        psw,
        pooling == "mean",
        OPTIMIZERS[optimizer],
        state1,
        state2,
        lr,
        eps,
        beta1,
        beta2,
        1.0 - beta1**step,
        1.0 - beta2**step,
    )


@_fused_update_op.register_fake
def _fused_update_fake(
    grad_output,
    weights,
    table_offsets,
    ids,
    offsets,
    per_sample_weights,
    pooling,
    optimizer,
    state1,
    state2,
    lr,
    eps,
    beta1,
    beta2,
    step,
):
    return None


# ------------------------------------------------------------------------------ public functions
def embedding_bag(
    weights: Tensor,
    table_offsets: Tensor,
    ids: Tensor,
    offsets: Tensor,
    per_sample_weights: Tensor | None = None,
    *,
    pooling: str = "sum",
    table_names: Sequence[str] | None = None,
) -> Tensor:
    """Pooled lookup over T tables in one call: (B, T*D), table t in columns [t*D, (t+1)*D).

    See the module docstring for the layout. Differentiable w.r.t. `weights` (a dense (R, D) gradient,
    for generic use; recengine.nn.EmbeddingTables fuses the sparse update instead) and
    `per_sample_weights`. `table_names` (optional) names the tables in error messages.
    """
    weights, table_offsets, ids, offsets, psw = check_embedding_bag_inputs(
        weights,
        table_offsets,
        ids,
        offsets,
        per_sample_weights,
        pooling=pooling,
        table_names=table_names,
        for_forward=True,
    )
    return torch.ops.recengine.embedding_bag(weights, table_offsets, ids, offsets, psw, pooling)


def embedding_bag_fused_update(
    grad_output: Tensor,
    weights: Tensor,
    table_offsets: Tensor,
    ids: Tensor,
    offsets: Tensor,
    per_sample_weights: Tensor | None = None,
    *,
    pooling: str = "sum",
    optimizer: str,
    lr: float,
    eps: float = 1e-8,
    betas: tuple[float, float] = (0.9, 0.999),
    state1: Tensor | None = None,
    state2: Tensor | None = None,
    step: int | Tensor = 1,
    table_names: Sequence[str] | None = None,
    check_values: bool = True,
) -> None:
    """The backward of `embedding_bag` fused with an optimizer step, in place; no dense gradient is built.

    The gradient of every row the batch refers to is summed over all its occurrences first, then:
      optimizer="sgd":             weights[r] -= lr * g
      optimizer="rowwise_adagrad": state1 (R,) += mean(g*g); weights[r] -= lr * g / (sqrt(state1[r]) + eps)
      optimizer="adam":            lazy Adam on touched rows only, state1 = m, state2 = v (both (R, D)),
                                   bias corrections from the global step count `step` (this step's number, >= 1;
                                   an int or a 0-d int64 tensor, read inside the op so it can live in a graph)
    Rows the batch does not refer to are untouched. Everything is validated before anything is written.
    """
    weights_c, table_offsets, ids, offsets, psw = check_embedding_bag_inputs(
        weights,
        table_offsets,
        ids,
        offsets,
        per_sample_weights,
        pooling=pooling,
        table_names=table_names,
        check_values=check_values,
    )
    if not weights.is_contiguous():
        raise ValueError("weights: must be contiguous (it is updated in place)")
    check_choice("optimizer", optimizer, tuple(OPTIMIZERS))
    check_number("lr", lr, minimum=0.0)
    check_number("eps", eps, minimum=0.0)
    if optimizer == "adam" and (
        not isinstance(betas, (tuple, list))
        or len(betas) != 2
        or not all(check_number("betas", b, minimum=0.0) < 1.0 for b in betas)
    ):
        raise ValueError(f"betas: expected two finite numbers in [0, 1), got {betas!r}")
    num_tables, batch = _sizes(table_offsets, offsets)
    num_rows, dim = weights.shape
    check_tensor(
        "grad_output", grad_output, dtypes=FLOAT_DTYPES, shape=(batch, num_tables * dim), device=weights.device
    )
    empty = weights.new_empty(0)
    if optimizer == "rowwise_adagrad":
        check_tensor("state1", state1, dtypes=FLOAT_DTYPES, shape=(num_rows,), device=weights.device)
    elif optimizer == "adam":
        check_tensor("state1", state1, dtypes=FLOAT_DTYPES, shape=(num_rows, dim), device=weights.device)
        check_tensor("state2", state2, dtypes=FLOAT_DTYPES, shape=(num_rows, dim), device=weights.device)
        if isinstance(step, Tensor):
            check_tensor("step", step, dtypes=(torch.int64,), shape=())
        else:
            check_int("step", step, minimum=1)
    for name, s in (("state1", state1), ("state2", state2)):
        if s is not None and not s.is_contiguous():
            raise ValueError(f"{name}: must be contiguous (it is updated in place)")
    state1 = state1 if state1 is not None else empty
    state2 = state2 if state2 is not None else empty
    beta1, beta2 = (float(b) for b in betas)
    if not isinstance(step, Tensor):
        step = torch.tensor(step, dtype=torch.int64)
    torch.ops.recengine.embedding_bag_fused_update(
        grad_output.detach(),
        weights.detach(),
        table_offsets,
        ids,
        offsets,
        None if psw is None else psw.detach(),
        pooling,
        optimizer,
        state1.detach(),
        state2.detach(),
        float(lr),
        float(eps),
        beta1,
        beta2,
        step,
    )
