"""Config files: a TOML/JSON table sets a dataclass's fields, checked against their types."""

import json
from dataclasses import dataclass, field

import pytest

from recengine.config_file import (
    ConfigFileError,
    apply_values,
    given_options,
    load_config,
    read_config_file,
    to_dict,
    write_resolved_config,
)
from recengine.report.compare_config import CompareConfig
from recengine.train import SASRecConfig


@dataclass
class Inner:
    lr: float = 0.1
    steps: int = 3


@dataclass
class Outer:
    name: str = "a"
    size: int = 1
    rate: float = 0.5
    flag: bool = False
    root: str | None = None
    names: tuple = ("x",)
    table: dict = field(default_factory=dict)
    inner: Inner = field(default_factory=lambda: Inner(lr=0.2))


def _write(tmp_path, text: str, name: str = "cfg.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_file_values_set_the_fields(tmp_path):
    path = _write(tmp_path, 'name = "b"\nsize = 4\nrate = 2\nnames = ["p", "q"]\n[table]\nk = 1\n')
    cfg = load_config(Outer(), path)
    assert (cfg.name, cfg.size, cfg.rate, cfg.names, cfg.table) == ("b", 4, 2.0, ("p", "q"), {"k": 1})


def test_a_nested_table_changes_only_its_keys_from_the_field_default(tmp_path):
    cfg = load_config(Outer(), _write(tmp_path, "[inner]\nsteps = 9\n"))
    assert cfg.inner == Inner(lr=0.2, steps=9)


@pytest.mark.parametrize(
    "text, key",
    [
        ("sise = 3\n", "sise"),
        ("[inner]\nlrr = 1.0\n", "inner.lrr"),
        ('size = "3"\n', "size"),
        ("size = 3.5\n", "size"),
        ("flag = 1\n", "flag"),
        ("rate = true\n", "rate"),
        ("root = 3\n", "root"),
        ('names = "x"\n', "names"),
        ("inner = 3\n", "inner"),
        ('[inner]\nsteps = "many"\n', "inner.steps"),
    ],
)
def test_a_bad_key_or_value_names_the_key_and_the_file(tmp_path, text, key):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigFileError, match=rf"{path}:\d+: .*{key}") as err:
        load_config(Outer(), path)
    assert "\n" not in str(err.value)


def test_the_dataclass_own_checks_run_and_name_the_file(tmp_path):
    path = _write(tmp_path, "dim = 30\nnum_heads = 4\n")
    with pytest.raises(ConfigFileError, match=rf"{path}:2: num_heads"):  # the file, the key's line
        load_config(SASRecConfig(), path)


@pytest.mark.parametrize("text", ["size = \n", "[unclosed\n"])
def test_a_malformed_toml_file_names_the_file(tmp_path, text):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigFileError, match=str(path)):
        read_config_file(path)


def test_a_missing_file_names_it(tmp_path):
    with pytest.raises(ConfigFileError, match="nope.toml"):
        read_config_file(tmp_path / "nope.toml")


def test_a_json_file_that_is_not_an_object_is_rejected(tmp_path):
    with pytest.raises(ConfigFileError, match="table"):
        read_config_file(_write(tmp_path, "[1, 2]", "cfg.json"))


def test_the_resolved_config_reloads_to_the_same_config(tmp_path):
    cfg = apply_values(CompareConfig(), {"seeds": 3, "agents": ["random"], "reinforce": {"lr": 0.5}})
    path = write_resolved_config(cfg, tmp_path / "run")
    assert json.loads(open(path).read()) == to_dict(cfg)
    assert load_config(CompareConfig(), path) == cfg


def test_given_options_are_only_the_typed_flags():
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--a", type=int, default=1)
    parser.add_argument("--b", type=int, default=2)
    parser.add_argument("--flag", action="store_true")
    assert given_options(parser, ["--b", "2"]) == {"b"}
    assert parser.parse_args([]).a == 1  # the parser's defaults are restored


@pytest.mark.parametrize("name, config", [("sasrec.toml", SASRecConfig()), ("compare.toml", CompareConfig())])
def test_the_example_config_files_load(name, config):
    import pathlib

    path = pathlib.Path(__file__).resolve().parent.parent / "examples" / name
    assert isinstance(load_config(config, path), type(config))


@pytest.mark.parametrize(
    "name", ["ml-1m.toml", "ml-1m-fast.toml", "ml-1m-w256.toml", "beauty.toml", "beauty-final.toml"]
)
def test_the_benchmark_config_files_load_and_say_what_they_set(name):
    import pathlib

    path = pathlib.Path(__file__).resolve().parent.parent / "benchmarks" / "configs" / name
    cfg = load_config(SASRecConfig(), path)
    assert set(read_config_file(path)) <= set(to_dict(cfg))  # every key is a setting (a typo would raise first)
    assert cfg.lr_schedule == "cosine" and cfg.max_epochs == cfg.patience  # a cosine budget is its epochs
