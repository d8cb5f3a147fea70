"""The matrix-factorisation user model: its arrays are checked, and a changed config leaves the rest alone."""

from __future__ import annotations

import numpy as np
import pytest

from recengine.env.user_model import SimConfig, UserModel, with_config


def test_user_model_rejects_bad_arrays():
    with pytest.raises(ValueError, match="item_factors"):
        UserModel(np.zeros((2, 3)), np.zeros((4, 2)), np.zeros(4), np.ones((4, 1)))
    with pytest.raises(ValueError, match="item_genres"):
        UserModel(np.zeros((2, 3)), np.zeros((4, 3)), np.zeros(4), -np.ones((4, 1)))
    with pytest.raises(IndexError, match="initial_histories"):
        UserModel(
            np.zeros((2, 3)),
            np.zeros((4, 3)),
            np.zeros(4),
            np.ones((4, 1)),
            initial_histories=np.array([[0, 4], [1, 2]]),
        )


def test_genres_are_normalised_to_sum_one():
    genres = np.array([[2.0, 2.0], [0.0, 0.0], [0.0, 3.0]])
    model = UserModel(np.zeros((1, 2)), np.zeros((3, 2)), np.zeros(3), genres)
    np.testing.assert_allclose(model.item_genres, [[0.5, 0.5], [0.0, 0.0], [0.0, 1.0]])


def test_with_config_changes_only_the_named_fields():
    model = UserModel(np.zeros((2, 3)), np.zeros((4, 3)), np.zeros(4), np.ones((4, 1)), config=SimConfig(slate_size=2))
    changed = with_config(model, max_steps=7)
    assert changed.config == SimConfig(slate_size=2, max_steps=7)
    assert model.config.max_steps == SimConfig().max_steps
    assert changed.item_factors is model.item_factors
