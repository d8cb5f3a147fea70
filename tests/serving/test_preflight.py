"""The quick checkpoint check before serving: from the header alone, no torch imported, every refusal names the
file."""

import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from recengine.serving.preflight import PreflightError, check_servable


def test_kinds_are_told_from_the_header(tmp_path):
    save_file({"x": torch.zeros(1)}, str(tmp_path / "model.safetensors"), metadata={"kind": "model"})
    assert check_servable(tmp_path) == "model"
    save_file({"x": torch.zeros(1)}, str(tmp_path / "a.safetensors"), metadata={"kind": "agent"})
    assert check_servable(tmp_path / "a.safetensors") == "agent"
    save_file({"x": torch.zeros(1)}, str(tmp_path / "old.safetensors"), metadata={"config": "{}"})
    assert check_servable(tmp_path / "old.safetensors") == "model"  # written before kinds existed
    (tmp_path / "sharded").mkdir()
    (tmp_path / "sharded" / "dense.safetensors").write_bytes(b"")
    assert check_servable(tmp_path / "sharded") == "sharded"


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "shorter than"),
        (b"\xff" * 8 + b"{}", "header length"),
        ((20).to_bytes(8, "little") + b"{}", "truncated header"),
        ((4).to_bytes(8, "little") + b"nope", "not JSON"),
        ((2).to_bytes(8, "little") + b"[]", "malformed header"),
        ((29).to_bytes(8, "little") + b'{"__metadata__":{"kind":"x"}}', "holds no model and no agent"),
        ((2).to_bytes(8, "little") + b"{}", "holds no model and no agent"),
    ],
)
def test_what_cannot_be_served_is_named(tmp_path, content, match):
    path = tmp_path / "m.safetensors"
    path.write_bytes(content)
    with pytest.raises(PreflightError, match=match) as err:
        check_servable(path)
    assert str(path) in str(err.value)


def test_missing_path_and_empty_directory(tmp_path):
    with pytest.raises(PreflightError, match="does not exist"):
        check_servable(tmp_path / "none")
    with pytest.raises(PreflightError, match="none of model.safetensors"):
        check_servable(tmp_path)


def test_it_imports_no_torch():
    code = "import sys; import recengine.serving.preflight, recengine.cli.serve; assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
