"""The `recengine` command line: the top-level options and the --config files of train and compare."""

import recengine
from recengine import cli


def test_version_prints_the_package_version_and_exits_0(capsys):
    try:
        cli.main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    else:
        raise AssertionError("--version did not exit")
    assert capsys.readouterr().out.strip() == f"recengine {cli.package_version()}"


def test_package_version_falls_back_to_the_module_version(monkeypatch):
    from importlib import metadata

    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", not_installed)
    assert cli.package_version() == recengine.__version__
