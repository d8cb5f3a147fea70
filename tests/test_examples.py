"""The runnable scripts in examples/ run as a user would run them (a fresh interpreter, their own working directory),
on tiny data, and print what their docstrings promise."""

import pathlib
import socket
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def _run(script: str, *args: str, cwd: pathlib.Path) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"{script} failed:\n{done.stderr[-3000:]}"
    return done.stdout


def test_every_script_is_tested():
    assert {p.name for p in EXAMPLES.glob("*.py")} == {
        "train_own_csv.py",
        "finetune_rl.py",
        "serve_model.py",
        "evaluate_logs.py",
    }


@pytest.mark.slow
def test_train_on_your_own_csv(tmp_path):
    out = _run("train_own_csv.py", "--out", "model", "--epochs", "1", "--users", "40", cwd=tmp_path)
    assert "model/demo_events.csv: 40 users" in out and "ndcg@10" in out
    assert "after ['sku-010', 'sku-011', 'sku-012']: ['sku-" in out
    assert (tmp_path / "model" / "model.safetensors").is_file()


@pytest.mark.slow
def test_fine_tune_with_rl(tmp_path):
    out = _run(
        "finetune_rl.py",
        *("--users", "60", "--epochs", "1", "--rl-steps", "4", "--envs", "32", "--sessions", "32"),
        cwd=tmp_path,
    )
    assert "large model: test ndcg@10" in out and "RL fine-tuning:" in out and "paired difference" in out


@pytest.mark.slow
def test_serve_a_model(tmp_path):
    pytest.importorskip("fastapi")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = _run("serve_model.py", "--port", str(port), cwd=tmp_path)
    assert f"serving runs/example-serve on http://127.0.0.1:{port}" in out
    assert "POST /recommend" in out and "-> items [" in out


def test_evaluate_logged_data(tmp_path):
    out = _run("evaluate_logs.py", "--rounds", "3000", "--bootstrap", "30", cwd=tmp_path)
    assert "true click rate" in out
    for name in ("DM", "IPS", "SNIPS", "DR"):
        assert any(line.startswith(f"{name} ") and "95% interval [" in line for line in out.splitlines()), name


def test_evaluate_your_own_logged_csv(tmp_path):
    (tmp_path / "target.csv").write_text("item,probability\na,0.7\nb,0.2\nc,0.1\n")
    rows = ["item,reward,pscore"] + [f"{'abc'[i % 3]},{int(i % 4 == 0)},0.3333333" for i in range(300)]
    (tmp_path / "logs.csv").write_text("\n".join(rows) + "\n")
    out = _run("evaluate_logs.py", "--logs", "logs.csv", "--target", "target.csv", "--bootstrap", "20", cwd=tmp_path)
    assert "300 logged rounds, 3 items" in out and "true click rate" not in out
