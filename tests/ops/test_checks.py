"""The shared validation helpers name the argument and the problem."""

import pytest
import torch

from recengine.ops._checks import (
    check_choice,
    check_int,
    check_number,
    check_positive,
    check_same_device,
    check_tensor,
)


def test_check_tensor_accepts_a_conforming_tensor():
    check_tensor("x", torch.zeros(2, 3), dtypes=[torch.float32], ndim=2, shape=(None, 3), device="cpu")


@pytest.mark.parametrize(
    "value, kwargs, exc, words",
    [
        ([1, 2], {}, TypeError, "x: expected a torch.Tensor"),
        (
            torch.zeros(2, dtype=torch.int64),
            {"dtypes": [torch.float32]},
            TypeError,
            "x: expected dtype float32, got int64",
        ),
        (torch.zeros(2), {"ndim": 2}, ValueError, "x: expected 2 dimension"),
        (torch.zeros(2, 4), {"shape": (None, 3)}, ValueError, "x: expected shape (*, 3), got (2, 4)"),
        (torch.zeros(2), {"device": "meta"}, ValueError, "x: expected device meta"),
    ],
)
def test_check_tensor_rejects_with_the_argument_named(value, kwargs, exc, words):
    with pytest.raises(exc) as info:
        check_tensor("x", value, **kwargs)
    assert words in str(info.value)


def test_check_same_device():
    assert check_same_device(a=torch.zeros(1), b=None, c=torch.zeros(2)) == torch.device("cpu")
    with pytest.raises(ValueError, match="a=cpu, b=meta"):
        check_same_device(a=torch.zeros(1), b=torch.zeros(1, device="meta"))


@pytest.mark.parametrize(
    "value, integer, exc",
    [
        (0, True, ValueError),
        (-1.0, False, ValueError),
        (float("nan"), False, ValueError),
        (1.5, True, TypeError),
        (True, True, TypeError),
        ("1", False, TypeError),
    ],
)
def test_check_positive_rejects(value, integer, exc):
    with pytest.raises(exc, match="k:"):
        check_positive("k", value, integer=integer)


def test_check_positive_accepts():
    check_positive("k", 3, integer=True)
    check_positive("t", 0.5)


@pytest.mark.parametrize(
    "value, kwargs, exc, words",
    [
        ("1", {}, TypeError, "x: expected a number, got str"),
        (True, {}, TypeError, "x: expected a number, got bool"),
        (float("nan"), {}, ValueError, "x: expected a finite number"),
        (float("inf"), {}, ValueError, "x: expected a finite number"),
        (-0.5, {"minimum": 0.0}, ValueError, "x: must be >= 0.0, got -0.5"),
        (0.0, {"minimum": 0.0, "exclusive": True}, ValueError, "x: must be > 0.0, got 0.0"),
    ],
)
def test_check_number_rejects_with_the_argument_named(value, kwargs, exc, words):
    with pytest.raises(exc) as info:
        check_number("x", value, **kwargs)
    assert words in str(info.value)


@pytest.mark.parametrize("value, kwargs, expected", [(0, {"minimum": 0.0}, 0.0), (2, {}, 2.0), (0.5, {}, 0.5)])
def test_check_number_returns_a_float(value, kwargs, expected):
    result = check_number("x", value, **kwargs)
    assert result == expected and isinstance(result, float)


@pytest.mark.parametrize(
    "value, exc, words",
    [
        (1.0, TypeError, "n: expected an int, got float"),
        (False, TypeError, "n: expected an int, got bool"),
        (0, ValueError, "n: must be >= 1, got 0"),
    ],
)
def test_check_int_rejects_with_the_argument_named(value, exc, words):
    with pytest.raises(exc) as info:
        check_int("n", value, minimum=1)
    assert words in str(info.value)


def test_check_int_returns_the_value():
    assert check_int("n", 3, minimum=1) == 3


@pytest.mark.parametrize(
    "value, exc, words",
    [
        (1, TypeError, "mode: expected a str, got int"),
        ("max", ValueError, "mode: expected one of ('sum', 'mean'), got 'max'"),
    ],
)
def test_check_choice_rejects_with_the_argument_named(value, exc, words):
    with pytest.raises(exc) as info:
        check_choice("mode", value, ("sum", "mean"))
    assert words in str(info.value)


def test_check_choice_returns_the_value():
    assert check_choice("mode", "mean", ("sum", "mean")) == "mean"
