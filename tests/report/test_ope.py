"""The off-policy evaluation report (`recengine ope`, its arguments from the command's parser): estimates against
the other policy's logs on a tiny fixture in obp's layout, the files it writes, and clear errors."""

from __future__ import annotations

import argparse
import json
import os

import pytest

from recengine.cli.ope import add_parser
from recengine.report.ope import main_from_args
from tests.data.obd_fixture import write_tiny_obd


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="recengine")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    return write_tiny_obd(str(tmp_path_factory.mktemp("obd")))


def _run(tiny_root: str, out: str, *extra: str) -> int:
    args = _parse(
        [
            "ope",
            "--dataset",
            "obd",
            "--behavior",
            "random",
            "--evaluate",
            "bts",
            "--data-root",
            tiny_root,
            "--out",
            out,
            "--n-sim",
            "2000",
            "--bootstrap",
            "50",
            "--folds",
            "2",
            *extra,
        ]
    )
    return main_from_args(args)


def test_ope_writes_every_estimate_with_interval_and_relative_error(tiny_root, tmp_path, capsys):
    out = str(tmp_path / "run")
    assert _run(tiny_root, out, "--clip", "3") == 0
    result = json.loads((tmp_path / "run" / "ope.json").read_text())
    names = set(result["estimates"])
    assert {"DM", "IPS", "SNIPS", "DR", "SNDR", "IPS (clip=3)", "DR (clip=3)"} <= names
    assert any(n.startswith("Switch-DR") for n in names) and any(n.startswith("DRos") for n in names)
    truth = result["on_policy_value"]
    for name, row in result["estimates"].items():
        assert row["lower"] <= row["upper"], name
        assert row["relative_error"] == pytest.approx(abs(row["estimate"] - truth) / truth), name
    assert "Monte Carlo" in result["action_dist"] and "prior" in result["action_dist"]
    printed = capsys.readouterr().out
    assert "| IPS |" in printed and "Monte Carlo" in printed
    assert (tmp_path / "run" / "ope.md").read_text().count("\n| ") == len(names) + 1  # header + one row each
    assert os.path.getsize(tmp_path / "run" / "ope.png") > 0
    assert sorted(result["files"]) == sorted(os.listdir(tmp_path / "run"))


def test_ope_md_opens_with_a_five_line_summary(tiny_root, tmp_path):
    assert _run(tiny_root, str(tmp_path)) == 0
    lines = (tmp_path / "ope.md").read_text().splitlines()
    assert lines[0].startswith("# Off-policy evaluation") and lines[1] == "" and lines[7] == ""
    summary = lines[2:7]
    assert all(line.startswith("- ") for line in summary)
    result = json.loads((tmp_path / "ope.json").read_text())
    assert f"{result['on_policy_value']:.5f}" in summary[1]
    covering = sum(r["lower"] <= result["on_policy_value"] <= r["upper"] for r in result["estimates"].values())
    assert summary[3] == f"- {covering} of {len(result['estimates'])} intervals contain the reference."


def test_ope_the_other_way_uses_the_uniform_distribution(tiny_root, tmp_path):
    args = _parse(
        [
            "ope",
            "--behavior",
            "bts",
            "--evaluate",
            "random",
            "--data-root",
            tiny_root,
            "--out",
            str(tmp_path),
            "--bootstrap",
            "20",
            "--folds",
            "2",
        ]
    )
    assert main_from_args(args) == 0
    result = json.loads((tmp_path / "ope.json").read_text())
    assert "1 / n_actions" in result["action_dist"]


def test_same_policy_twice_is_an_error(tiny_root, tmp_path, capsys):
    args = _parse(
        ["ope", "--behavior", "random", "--evaluate", "random", "--data-root", tiny_root, "--out", str(tmp_path)]
    )
    assert main_from_args(args) == 2
    assert "--evaluate must differ from --behavior" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "ope.json")


def test_missing_data_root_is_reported(tmp_path, capsys):
    assert _run(str(tmp_path / "nowhere"), str(tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert "all.csv" in err and err.startswith("recengine ope: error: ") and err.count("\n") == 1
