"""The table-major jagged layout: which bag each id belongs to."""

import torch

from recengine.ops.jagged_layout import bag_of_each_id


def test_each_id_gets_its_bag_empty_bags_included():
    offsets = torch.tensor([0, 2, 2, 5, 6])
    assert bag_of_each_id(offsets, 6).tolist() == [0, 0, 2, 2, 2, 3]


def test_no_ids_no_bags():
    assert bag_of_each_id(torch.tensor([0, 0, 0]), 0).tolist() == []
