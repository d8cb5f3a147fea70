"""recengine.cli.dataset_arg: --dataset is a name or a path in a known format; anything else is one line naming it."""

import pytest

from recengine.cli.common import UsageError
from recengine.cli.dataset_arg import check_dataset

NAMES = ("ml-100k", "synthetic")


@pytest.mark.parametrize("name", ["events.csv", "events.parquet", "seq.txt", "seq.seq", "log.tsv"])
def test_a_file_in_a_known_format_passes(tmp_path, name):
    (tmp_path / name).write_text("")
    check_dataset(str(tmp_path / name), NAMES)


def test_a_name_and_an_atomic_directory_pass(tmp_path):
    check_dataset("synthetic", NAMES)
    (tmp_path / "mine.inter").write_text("")
    check_dataset(str(tmp_path), NAMES)


def test_a_directory_without_an_inter_file_is_named(tmp_path):
    with pytest.raises(UsageError, match=rf"--dataset: {tmp_path}: an atomic dataset needs exactly one"):
        check_dataset(str(tmp_path), NAMES)


def test_a_mistyped_name_gets_a_suggestion():
    with pytest.raises(UsageError, match=r"'ml100k' is neither a dataset name \(did you mean 'ml-100k'\?\)"):
        check_dataset("ml100k", NAMES)


def test_an_unknown_format_names_the_path(tmp_path):
    path = tmp_path / "events.xlsx"
    path.write_text("")
    with pytest.raises(UsageError, match=rf"--dataset: {path}: unknown data format '.xlsx'"):
        check_dataset(str(path), NAMES)
