"""`recengine serve`: a missing checkpoint is a usage error (one line, exit code 2), and the options reach the
server as given, the OpenMP wait policy set first."""

import pytest
import torch

from recengine.cli import main


def test_a_missing_checkpoint_is_one_line_exit_2(tmp_path, capsys):
    assert main(["serve", "--checkpoint", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err == f"recengine serve: error: --checkpoint: {tmp_path / 'none'} does not exist\n"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_options_reach_the_server(tmp_path, monkeypatch, capsys):
    pytest.importorskip("fastapi")
    calls = []
    monkeypatch.setattr("recengine.serving.threads.set_wait_policy", lambda policy: calls.append(("wait", policy)))
    monkeypatch.setattr("recengine.serving.http.serve", lambda path, **kw: calls.append(("serve", path, kw)))
    from safetensors.torch import save_file

    # a header the quick check accepts (the server itself is replaced: nothing is loaded)
    save_file({"x": torch.zeros(1)}, str(tmp_path / "model.safetensors"), metadata={"kind": "model"})
    argv = ["serve", "--checkpoint", str(tmp_path), "--port", str(_free_port()), "--dtype", "int8", "--threads", "0"]
    assert main([*argv, "--omp-wait-policy", "active"]) == 0
    assert calls[0] == ("wait", "active")
    on_listening = calls[1][2].pop("on_listening")
    assert calls[1] == (
        "serve",
        str(tmp_path),
        {
            "host": "127.0.0.1",
            "port": int(argv[4]),
            "dtype": "int8",
            "max_batch": 256,
            "max_wait_ms": 2.0,
            "threads": None,
            "compile": False,
            "compute_dtype": "float32",
            "max_queue": 1024,
            "deadline_ms": 5000.0,
            "admin_token": None,
            "access_log": False,
        },
    )
    on_listening("http://127.0.0.1:9000")
    assert capsys.readouterr().out == f"serving {tmp_path} on http://127.0.0.1:9000\n"


def test_the_operations_options_reach_the_server(tmp_path, monkeypatch):
    pytest.importorskip("fastapi")
    calls = []
    monkeypatch.setattr("recengine.serving.threads.set_wait_policy", lambda policy: None)
    monkeypatch.setattr("recengine.serving.http.serve", lambda path, **kw: calls.append(kw))
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "model.safetensors"), metadata={"kind": "model"})
    argv = [
        "serve",
        "--checkpoint",
        str(tmp_path),
        "--max-queue",
        "0",
        "--deadline-ms",
        "250",
        "--port",
        str(_free_port()),
    ]
    assert main([*argv, "--admin-token", "s3cret", "--access-log"]) == 0
    assert {k: calls[0][k] for k in ("max_queue", "deadline_ms", "admin_token", "access_log")} == {
        "max_queue": None,
        "deadline_ms": 250.0,
        "admin_token": "s3cret",
        "access_log": True,
    }


@pytest.mark.parametrize(
    "flag, value",
    [
        ("--max-queue", "-1"),
        ("--max-queue", "many"),
        ("--deadline-ms", "-5"),
        ("--deadline-ms", "nan"),
        ("--admin-token", ""),
        ("--admin-token", "a b"),
    ],
)
def test_a_bad_operations_option_is_one_line_exit_2(tmp_path, capsys, flag, value):
    try:
        code = main(["serve", "--checkpoint", str(tmp_path), flag, value])
    except SystemExit as exc:  # argparse's own errors exit from the parser
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and flag in err


def test_a_port_in_use_is_one_line_exit_2_before_loading(tmp_path, capsys):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--checkpoint", str(tmp_path), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"recengine serve: error: --port: cannot listen on 127.0.0.1:{port}") and err.count("\n") == 1


def test_a_file_that_passes_the_quick_check_but_does_not_load_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    """The model loads before the server starts: no traceback from uvicorn's startup, no exit code 3."""
    pytest.importorskip("fastapi")
    from safetensors.torch import save_file

    monkeypatch.setattr("recengine.serving.threads.set_wait_policy", lambda policy: None)
    save_file({"x": torch.zeros(1)}, str(tmp_path / "model.safetensors"), metadata={"kind": "model"})
    assert main(["serve", "--checkpoint", str(tmp_path), "--port", str(_free_port())]) == 2
    err = capsys.readouterr().err
    assert err.startswith("recengine serve: error: --checkpoint: ") and "not a recengine model" in err
    assert err.count("\n") == 1
