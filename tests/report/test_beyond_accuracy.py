"""The comparison's beyond-accuracy measurements: the evaluation hook, the offline lists, pooling over seeds, the
report section and the plot."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from recengine.agents.baselines import PopularityPolicy, RandomPolicy
from recengine.data import histories_of, leave_one_out, make_synthetic
from recengine.padding import PAD_ID
from recengine.report.beyond_accuracy import (
    DEFINITIONS,
    PLOT_FILE,
    GreedySlates,
    add_beyond_accuracy,
    histories_before_test,
    item_spaces,
    measure,
    measure_agent,
    offline_lists,
    pool,
    section,
    text_vectors,
    write_plot,
)


def _step(slates, done):
    return SimpleNamespace(slates=torch.tensor(slates), done=torch.tensor(done))


@pytest.fixture(scope="module")
def split():
    return leave_one_out(histories_of(make_synthetic(num_users=40, num_items=30, seed=0)))


def test_greedy_slates_keep_each_slots_first_session():
    hook = GreedySlates(2)
    hook(_step([[0, 1], [2, 3]], [False, True]))  # slot 1's session ends here
    hook(_step([[4, 5], [6, 7]], [True, False]))
    hook(_step([[8, 9], [9, 8]], [False, False]))  # both finished: nothing more counts
    slates, sessions = hook.lists()
    assert slates.tolist() == [[0, 1], [2, 3], [4, 5]] and sessions.tolist() == [0, 1, 0]


def test_greedy_slates_reject_a_step_of_another_batch():
    with pytest.raises(ValueError, match="step"):
        GreedySlates(3)(_step([[0, 1]], [False]))


def test_histories_before_test_are_right_aligned_prefixes(split):
    users, hist, targets = histories_before_test(split)
    h = split.histories
    for row, u in enumerate(users[:5]):
        prefix = h.items[h.offsets[u] : split.prefix_end("test")[u]]
        assert hist[row, hist.shape[1] - prefix.size :].tolist() == prefix.tolist()
        assert (hist[row, : hist.shape[1] - prefix.size] == PAD_ID).all()
        assert targets[row] == split.test_target[u]


def test_offline_lists_exclude_the_history(split):
    lists, targets = offline_lists(PopularityPolicy(np.arange(30), 5), split, 5)
    _, hist, all_targets = histories_before_test(split)
    unseen = np.array([30 - len(set(h[h >= 0])) for h in hist])
    assert lists.shape == (len(targets), 5) and len(targets) == (unseen >= 5).sum()
    kept = hist[unseen >= 5]
    assert not any(set(row) & set(h[h >= 0]) for row, h in zip(lists.tolist(), kept))


def test_offline_lists_leave_a_random_policys_draws_unchanged(split):
    a, b = RandomPolicy(30, 4, seed=3), RandomPolicy(30, 4, seed=3)
    offline_lists(a, split, 4)
    obs = np.full((2, 3), PAD_ID)
    assert torch.equal(a.act(obs), b.act(obs))


def test_measure_groups_lists_into_units():
    spaces = {"embedding": np.eye(4)}
    m = measure([[0, 1], [0, 0], [2, 3]], np.array([5, 5, 6]), num_items=4, train_counts=[4, 3, 2, 1], spaces=spaces)
    assert m["per_unit"]["diversity_embedding"].tolist() == pytest.approx([0.5, 1.0])  # (1 + 0) / 2, then 1
    assert m["coverage"] == 1.0 and m["lists"] == 3 and m["k"] == 2
    # the top 10% of 4 items is item 0: slates 1/2 and 2/2, session mean 0.75; the other session 0
    assert m["per_unit"]["popularity_bias"].tolist() == pytest.approx([0.75, 0.0])


def test_item_spaces_have_genres_when_the_data_has_them():
    data = make_synthetic(num_users=10, num_items=12, seed=0)
    spaces = item_spaces(data, torch.ones(12, 3))
    assert set(spaces) == {"genre", "embedding", "text"}  # synthetic titles "item <id>": one shared word
    assert spaces["genre"].shape == (12, data.item_feature_sizes["genre"]) and spaces["text"].num_items == 12
    assert set(item_spaces(SimpleNamespace(), np.ones((12, 3)))) == {"embedding"}


# 4 titled items; title words in at least two titles (the year dropped): alpha, beta, gamma, all with the same idf,
# so the TF-IDF vectors are item 0 (1, 1, 0)/sqrt2, item 1 (1, 0, 1)/sqrt2, item 2 (0, 1, 1)/sqrt2, item 3 empty
TITLED = SimpleNamespace(
    num_items=4, item_titles=["Alpha Beta (1995)", "alpha gamma", "Beta, Gamma!", "Delta (1995)"], item_features={}
)


def test_text_space_is_the_tfidf_title_vectors():
    text = text_vectors(TITLED)
    s = 1 / math.sqrt(2)
    np.testing.assert_allclose(text.dense(), [[s, s, 0], [s, 0, s], [0, s, s], [0, 0, 0]], rtol=1e-6)
    assert set(item_spaces(TITLED, np.eye(4))) == {"embedding", "text"}
    assert text_vectors(SimpleNamespace(num_items=4, item_titles=["a b"] * 3)) is None  # not one title per item


def test_diversity_by_text_hand_values():
    # every pair of items 0-2 shares one word of two: cosine 1/2; item 3 has no vocabulary word: cosine 0
    lists = [[0, 1, PAD_ID], [0, 3, PAD_ID], [0, 1, 2], [2, 2, PAD_ID]]
    spaces = item_spaces(TITLED, np.eye(4))
    m = measure(lists, np.arange(4), num_items=4, train_counts=[1, 1, 1, 1], spaces=spaces)
    assert m["per_unit"]["diversity_text"].tolist() == pytest.approx([0.5, 1.0, 0.5, 0.0])
    assert m["per_unit"]["diversity_embedding"].tolist() == pytest.approx([1.0, 1.0, 1.0, 0.0])  # unchanged


def test_section_has_the_text_diversity_column_and_definition():
    raw = {
        "simulator": measure(
            [[0, 1], [0, 3]], np.array([0, 1]), num_items=4, train_counts=[1] * 4, spaces=item_spaces(TITLED, np.eye(4))
        )
    }
    results = {"meta": {}, "agents": {"random": {"beyond_accuracy": pool([raw])}}}
    lines = section(results)
    header = next(line for line in lines if line.startswith("| agent |"))
    row = next(line for line in lines if line.startswith("| random |"))
    cells = dict(zip(header.split(" | "), row.split(" | ")))
    assert cells["diversity (text)"].startswith("0.750 [")  # (0.5 + 1.0) / 2 over the two sessions
    assert cells["diversity (embedding)"].startswith("1.000")
    assert "diversity (text)" in DEFINITIONS


def _raw(split, policy, seed=0):
    setup = SimpleNamespace(
        data=make_synthetic(num_users=40, num_items=30, seed=0),
        split=split,
        item_counts=np.arange(30),
        num_items=30,
        slate_size=10,
    )
    hook = GreedySlates(3)
    hook(_step([[0, 1, 2], [3, 4, 5], [6, 7, 8]], [True, False, True]))
    hook(_step([[9, 10, 11], [12, 13, 14], [1, 2, 3]], [True, True, True]))
    return measure_agent(
        policy, setup, torch.randn(30, 4, generator=torch.Generator().manual_seed(1)), hook, offline=True, seed=seed
    )


def test_measure_agent_offline_and_in_the_simulator(split):
    raw = _raw(split, PopularityPolicy(np.arange(30), 10))
    assert raw["simulator"]["lists"] == 4 and raw["simulator"]["coverage"] == pytest.approx(12 / 30)  # items 0-8, 12-14
    off = raw["offline"]
    assert off["k"] == 10 and 0 < off["lists"] <= len(split.eval_users)
    assert set(off["per_unit"]) >= {"diversity_genre", "diversity_embedding", "novelty", "popularity_bias", "hr@10"}
    assert ((off["per_unit"]["ndcg@10"] >= 0) & (off["per_unit"]["ndcg@10"] <= off["per_unit"]["hr@10"])).all()


def test_pool_over_seeds_concatenates_units_and_averages_coverage(split):
    raws = [_raw(split, RandomPolicy(30, 10, seed=s), seed=s) for s in (0, 1)]
    one = pool(raws[:1])
    both = pool(raws)
    assert both["offline"]["novelty"]["n"] == 2 * one["offline"]["novelty"]["n"]
    mean_cov = (raws[0]["offline"]["coverage"] + raws[1]["offline"]["coverage"]) / 2
    assert both["offline"]["coverage"]["value"] == pytest.approx(mean_cov)
    lo, hi = both["simulator"]["novelty"]["ci95"]
    assert lo <= both["simulator"]["novelty"]["value"] <= hi and both["simulator"]["unit"] == "session"


def test_add_beyond_accuracy_moves_the_raw_measurements(split):
    per_seed = {"popularity": [{"beyond_accuracy": _raw(split, PopularityPolicy(np.arange(30), 10))}]}
    agents = {"popularity": {}}
    add_beyond_accuracy(agents, per_seed)
    assert "beyond_accuracy" not in per_seed["popularity"][0]
    assert agents["popularity"]["beyond_accuracy"]["offline"]["unit"] == "test user"


def _results(split):
    agents = {}
    for name, policy in (("random", RandomPolicy(30, 10, seed=0)), ("popularity", PopularityPolicy(np.arange(30), 10))):
        agents[name] = {"avg_return": 1.0, "return_ci95": [0.8, 1.2], "beyond_accuracy": pool([_raw(split, policy)])}
    return {"meta": {"ci_level": 0.95}, "agents": agents, "beyond_accuracy": {"plot": None}}


def test_section_lists_every_agent_with_intervals(split):
    lines = section(_results(split))
    text = "\n".join(lines)
    assert lines[0] == "## Beyond accuracy"
    assert text.count("| random |") == 2 and text.count("| popularity |") == 2
    assert "NDCG@10" in text and "novelty (bits)" in text and "[" in text


def test_section_is_empty_without_measurements():
    assert section({"agents": {"random": {"avg_return": 1.0}}}) == []


def test_write_plot_writes_a_png_and_names_it(split, tmp_path):
    results = _results(split)
    assert write_plot(str(tmp_path), results)
    assert (tmp_path / PLOT_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert results["beyond_accuracy"]["plot"] == PLOT_FILE
    assert f"![{PLOT_FILE}]({PLOT_FILE})" in section(results)


def test_write_plot_without_measurements_writes_nothing(tmp_path):
    assert not write_plot(str(tmp_path), {"agents": {"random": {"avg_return": 1.0}}})
    assert not (tmp_path / PLOT_FILE).exists()


def test_pool_of_single_item_lists_leaves_diversity_undefined():
    raw = {
        "simulator": measure(
            [[0], [1]], np.array([0, 1]), num_items=3, train_counts=[1, 1, 1], spaces={"embedding": np.eye(3)}
        )
    }
    block = pool([raw])["simulator"]
    assert block["diversity_embedding"]["n"] == 0 and math.isnan(block["diversity_embedding"]["value"])
    assert block["coverage"]["value"] == pytest.approx(2 / 3)
