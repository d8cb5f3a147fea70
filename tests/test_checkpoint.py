"""recengine.checkpoint: the file format alone (tensors + versioned JSON metadata, atomic writes, untrusted-file
checks); the models written on it are tested with their writers (tests/nn/test_persistence.py,
tests/train/test_sasrec_checkpoint.py)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from recengine import checkpoint


def test_write_read_round_trip_tags_version_and_kind(tmp_path):
    path = str(tmp_path / "f.safetensors")
    w = torch.arange(6, dtype=torch.float32).reshape(2, 3).t()  # not contiguous: written as its values
    checkpoint.write(path, {"w": w}, checkpoint.SCORER_KIND, {"note": "x"})
    tensors, meta = checkpoint.read(path)
    assert torch.equal(tensors["w"], w)
    assert meta == {"note": "x", "format_version": str(checkpoint.FORMAT_VERSION), "kind": "scorer"}
    assert checkpoint.kind_of(meta) == "scorer"


def test_a_file_without_kind_holds_a_model(tmp_path):
    path = str(tmp_path / "old.safetensors")
    save_file({"w": torch.zeros(2)}, path, metadata={"config": "{}"})
    _, meta = checkpoint.read(path)
    assert checkpoint.kind_of(meta) == checkpoint.MODEL_KIND


@pytest.mark.parametrize(
    "meta, match",
    [
        ({"format_version": str(checkpoint.FORMAT_VERSION + 1)}, "format version"),
        ({"format_version": "one"}, "format version"),
        ({"kind": "optimizer"}, "kind"),
    ],
)
def test_unknown_versions_and_kinds_are_refused_naming_the_file(tmp_path, meta, match):
    path = str(tmp_path / "f.safetensors")
    save_file({"w": torch.zeros(2)}, path, metadata=meta)
    with pytest.raises(checkpoint.CheckpointError, match=match) as info:
        checkpoint.read(path)
    assert path in str(info.value)


def test_metadata_fields_are_checked(tmp_path):
    meta = {"a": "[1]", "b": "{", "spec": '{"tables": [["genre", 0]]}'}
    assert checkpoint.json_field("p", meta, "a", list) == [1]
    with pytest.raises(checkpoint.CheckpointError, match="not valid JSON"):
        checkpoint.json_field("p", meta, "b", dict)
    with pytest.raises(checkpoint.CheckpointError, match="JSON dict"):
        checkpoint.json_field("p", meta, "a", dict)
    with pytest.raises(checkpoint.CheckpointError, match="lacks c"):
        checkpoint.require_metadata("p", meta, ("a", "c"))
    assert checkpoint.table_list("p", {"tables": [["genre", 3]]}, "tables") == [("genre", 3)]
    with pytest.raises(checkpoint.CheckpointError, match="rows >= 1"):
        checkpoint.table_list("p", checkpoint.json_field("p", meta, "spec", dict), "tables")


def test_tensors_are_compared_by_name_shape_and_dtype():
    expected = {"a": torch.zeros(2, 3), "b": torch.zeros(4)}
    checkpoint.check_tensors_match("p", {"a": torch.ones(2, 3), "b": torch.ones(4)}, expected)
    with pytest.raises(checkpoint.CheckpointError, match=r"missing \['b'\].*unexpected \['c'\].*wrong shape"):
        checkpoint.check_tensors_match("p", {"a": torch.zeros(3, 2), "c": torch.zeros(1)}, expected)


def test_optimizer_state_round_trips(tmp_path):
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.Adam([p], lr=0.1)
    p.grad = torch.full((3,), 0.5)
    opt.step()
    tensors, groups = checkpoint.optimizer_tensors(opt)
    path = str(tmp_path / "o.safetensors")
    checkpoint.write(path, tensors, checkpoint.TRAINING_KIND, {"optim_groups": groups})
    read_tensors, meta = checkpoint.read(path)
    state = checkpoint.optimizer_state(path, read_tensors, meta)
    again = torch.optim.Adam([torch.nn.Parameter(torch.ones(3))], lr=0.1)
    again.load_state_dict(state)
    assert torch.equal(again.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
