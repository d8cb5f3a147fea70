"""SASRecConfig: item-id dropout, label smoothing, item init (defaults, ranges, round trip through a dict)."""

from __future__ import annotations

from dataclasses import asdict

import pytest

from recengine.train.config import SASRecConfig


def test_id_dropout_defaults_to_off():
    assert SASRecConfig().id_dropout == 0.0


def test_id_dropout_round_trips_through_a_dict():
    cfg = SASRecConfig(id_dropout=0.5)
    assert SASRecConfig.from_dict(asdict(cfg)) == cfg
    assert "id_dropout" in cfg.trajectory_fields()  # a resumed run must keep it
    assert SASRecConfig.from_dict({"dim": 32}).id_dropout == 0.0  # a file written before the option


@pytest.mark.parametrize(
    ("value", "error"), [(1.0, ValueError), (-0.01, ValueError), (float("nan"), ValueError), ("0.5", TypeError)]
)
def test_bad_id_dropout_is_rejected_by_name(value, error):
    with pytest.raises(error, match="id_dropout"):
        SASRecConfig(id_dropout=value)


def test_label_smoothing_defaults_to_off_and_is_part_of_the_trajectory():
    assert SASRecConfig().label_smoothing == 0.0
    cfg = SASRecConfig(label_smoothing=0.1)
    assert SASRecConfig.from_dict(asdict(cfg)) == cfg
    assert cfg.trajectory_fields()["label_smoothing"] == 0.1


@pytest.mark.parametrize(
    ("value", "error"), [(1.0, ValueError), (-0.01, ValueError), (float("nan"), ValueError), ("0.1", TypeError)]
)
def test_bad_label_smoothing_is_rejected_by_name(value, error):
    with pytest.raises(error, match="label_smoothing"):
        SASRecConfig(label_smoothing=value)


def test_item_init_std_defaults_to_the_encoders_own_and_is_part_of_the_trajectory():
    assert SASRecConfig().item_init_std is None
    cfg = SASRecConfig(item_init_std=0.02)
    assert SASRecConfig.from_dict(asdict(cfg)) == cfg
    assert cfg.trajectory_fields()["item_init_std"] == 0.02
    assert SASRecConfig.from_dict({"dim": 32}).item_init_std is None  # a file written before the option


@pytest.mark.parametrize(
    ("value", "error"), [(0.0, ValueError), (-0.02, ValueError), (float("inf"), ValueError), ("0.02", TypeError)]
)
def test_bad_item_init_std_is_rejected_by_name(value, error):
    with pytest.raises(error, match="item_init_std"):
        SASRecConfig(item_init_std=value)


def test_length_buckets_defaults_to_on_and_must_be_a_bool():
    assert SASRecConfig().length_buckets is True
    assert SASRecConfig.from_dict({"dim": 32}).length_buckets is True  # a file written before the option
    assert SASRecConfig(length_buckets=False).trajectory_fields()["length_buckets"] is False
    with pytest.raises(TypeError, match="length_buckets"):
        SASRecConfig(length_buckets=0)
