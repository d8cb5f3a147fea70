"""`recengine serve`: a missing checkpoint is a usage error (one line, exit code 2), and the options reach the
server as given, the OpenMP wait policy set first."""

import pytest
import torch

from recengine.cli import main


def test_a_missing_checkpoint_is_one_line_exit_2(tmp_path, capsys):
    assert main(["serve", "--checkpoint", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err == f"recengine serve: error: --checkpoint: {tmp_path / 'none'} does not exist\n"


def test_the_options_reach_the_server(tmp_path, monkeypatch):
    pytest.importorskip("fastapi")
    calls = []
    monkeypatch.setattr("recengine.serving.threads.set_wait_policy", lambda policy: calls.append(("wait", policy)))
    monkeypatch.setattr("recengine.serving.http.serve", lambda path, **kw: calls.append(("serve", path, kw)))
    from safetensors.torch import save_file

    # a header the quick check accepts (the server itself is replaced: nothing is loaded)
    save_file({"x": torch.zeros(1)}, str(tmp_path / "model.safetensors"), metadata={"kind": "model"})
    argv = ["serve", "--checkpoint", str(tmp_path), "--port", "9000", "--dtype", "int8", "--threads", "0"]
    assert main([*argv, "--omp-wait-policy", "active"]) == 0
    assert calls[0] == ("wait", "active")
    assert calls[1] == (
        "serve",
        str(tmp_path),
        {
            "host": "127.0.0.1",
            "port": 9000,
            "dtype": "int8",
            "max_batch": 256,
            "max_wait_ms": 2.0,
            "threads": None,
            "compile": False,
            "compute_dtype": "float32",
        },
    )
