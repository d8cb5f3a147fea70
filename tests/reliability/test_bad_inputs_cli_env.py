"""Bad command lines (exit code 2, one line on stderr naming the option, no traceback, nothing written) and bad
simulator arguments."""

from __future__ import annotations

import os

import pytest
import torch
from safetensors.torch import save_file

from recengine.agents.config import DQNConfig, EncoderConfig, ReinforceConfig
from recengine.buffers import PrioritizedReplay
from recengine.cli import main
from recengine.env import SimConfig, VecRecSim, save_simulator, synthetic_user_model
from recengine.report.compare_config import CompareConfig
from tests.env.conftest import make_tiny_sim
from tests.reliability.cases import files_digest


def _run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def _argv(template: list[str], tmp: str) -> list[str]:
    return [a.replace("{tmp}", tmp) for a in template]


CLI = [
    # (id, argv, words the one-line error must hold)
    ("bench-repeat-negative", ["bench", "--repeat", "-1"], "--repeat"),
    ("bench-repeat-zero", ["bench", "--repeat", "0"], "--repeat"),
    ("bench-repeat-str", ["bench", "--repeat", "many"], "--repeat"),
    ("bench-threads-negative", ["bench", "--threads", "-2"], "--threads"),
    ("bench-device-tpu", ["bench", "--device", "tpu"], "--device"),
    ("bench-device-cuda-word", ["bench", "--device", "cuda:x"], "--device"),
    ("bench-family-unknown", ["bench", "nope", "--out", "{tmp}/o"], "nope"),
    ("bench-family-typo", ["bench", "polcy", "--out", "{tmp}/o"], "did you mean 'policy'?"),
    ("bench-harness-not-alone", ["bench", "train", "policy", "--out", "{tmp}/o"], "runs alone"),
    ("bench-out-file", ["bench", "--out", "{tmp}/file"], "--out"),
    ("bench-out-under-file", ["bench", "--out", "{tmp}/file/o"], "--out"),
    ("bench-out-holds-run", ["bench", "--out", "{tmp}/done"], "--overwrite"),
    ("train-model-unknown", ["train", "gpt", "--out", "{tmp}/o"], "model"),
    ("train-option-typo", ["train", "sasrec", "--epochs", "2"], "recengine train: error: unrecognized arguments"),
    ("train-option-suggestion", ["train", "sasrec", "--epochs", "2"], "did you mean '--max-epochs'?"),
    ("train-resume-without-out", ["train", "sasrec", "--resume"], "--out"),
    ("train-resume-overwrite", ["train", "sasrec", "--out", "{tmp}/run", "--resume", "--overwrite"], "--overwrite"),
    ("train-out-holds-run", ["train", "sasrec", "--out", "{tmp}/done"], "already holds a run"),
    ("train-dataset-typo", ["train", "sasrec", "--out", "{tmp}/o", "--dataset", "ml100k"], "did you mean 'ml-100k'?"),
    ("train-dataset-format", ["train", "sasrec", "--out", "{tmp}/o", "--dataset", "{tmp}/file"], "unknown data format"),
    ("train-dataset-empty-dir", ["train", "sasrec", "--out", "{tmp}/o", "--dataset", "{tmp}/empty"], ".inter"),
    ("train-out-file", ["train", "sasrec", "--out", "{tmp}/file"], "--out"),
    ("train-out-under-file", ["train", "sasrec", "--out", "{tmp}/file/o"], "--out"),
    ("train-data-root-missing", ["train", "sasrec", "--out", "{tmp}/o", "--data-root", "{tmp}/none"], "--data-root"),
    ("train-root-missing", ["train", "sasrec", "--out", "{tmp}/o", "--root", "{tmp}/none"], "--data-root"),
    ("train-data-root-file", ["train", "sasrec", "--out", "{tmp}/o", "--data-root", "{tmp}/file"], "--data-root"),
    ("train-resume-nothing", ["train", "sasrec", "--out", "{tmp}", "--resume"], "--resume"),
    ("train-resume-truncated", ["train", "sasrec", "--out", "{tmp}/run", "--resume"], "checkpoint.safetensors"),
    ("train-dataset-unknown", ["train", "sasrec", "--out", "{tmp}/o", "--dataset", "ml-10m"], "--dataset"),
    ("train-dim-zero", ["train", "sasrec", "--out", "{tmp}/o", "--dim", "0"], "--dim"),
    ("train-dim-float", ["train", "sasrec", "--out", "{tmp}/o", "--dim", "8.5"], "--dim"),
    ("train-dim-heads", ["train", "sasrec", "--out", "{tmp}/o", "--dim", "3", "--dataset", "synthetic"], "num_heads"),
    ("train-max-len-negative", ["train", "sasrec", "--out", "{tmp}/o", "--max-len", "-5"], "--max-len"),
    ("train-layers-zero", ["train", "sasrec", "--out", "{tmp}/o", "--num-layers", "0"], "--num-layers"),
    ("train-dropout-one", ["train", "sasrec", "--out", "{tmp}/o", "--dropout", "1"], "--dropout"),
    ("train-dropout-nan", ["train", "sasrec", "--out", "{tmp}/o", "--dropout", "nan"], "--dropout"),
    ("train-lr-zero", ["train", "sasrec", "--out", "{tmp}/o", "--lr", "0"], "--lr"),
    ("train-lr-inf", ["train", "sasrec", "--out", "{tmp}/o", "--lr", "inf"], "--lr"),
    ("train-batch-zero", ["train", "sasrec", "--out", "{tmp}/o", "--batch-size", "0"], "--batch-size"),
    ("train-epochs-zero", ["train", "sasrec", "--out", "{tmp}/o", "--max-epochs", "0"], "--max-epochs"),
    ("train-patience-negative", ["train", "sasrec", "--out", "{tmp}/o", "--patience", "-1"], "--patience"),
    ("train-seconds-zero", ["train", "sasrec", "--out", "{tmp}/o", "--max-seconds", "0"], "--max-seconds"),
    ("train-seconds-nan", ["train", "sasrec", "--out", "{tmp}/o", "--max-seconds", "nan"], "--max-seconds"),
    ("train-seed-negative", ["train", "sasrec", "--out", "{tmp}/o", "--seed", "-1"], "--seed"),
    ("train-bpr-epochs-zero", ["train", "sasrec", "--out", "{tmp}/o", "--bpr-epochs", "0"], "--bpr-epochs"),
    (
        "train-synthetic-users-one",
        ["train", "sasrec", "--out", "{tmp}/o", "--synthetic-users", "1"],
        "--synthetic-users",
    ),
    (
        "train-synthetic-items-zero",
        ["train", "sasrec", "--out", "{tmp}/o", "--synthetic-items", "0"],
        "--synthetic-items",
    ),
    ("train-threads-negative", ["train", "sasrec", "--out", "{tmp}/o", "--threads", "-1"], "--threads"),
    ("compare-seeds-zero", ["compare", "--out", "{tmp}/o", "--seeds", "0"], "--seeds"),
    ("compare-seeds-negative", ["compare", "--out", "{tmp}/o", "--seeds", "-3"], "--seeds"),
    ("compare-seed-str", ["compare", "--out", "{tmp}/o", "--seed", "x"], "--seed"),
    ("compare-threads-float", ["compare", "--out", "{tmp}/o", "--threads", "1.5"], "--threads"),
    ("compare-out-file", ["compare", "--out", "{tmp}/file"], "--out"),
    ("compare-out-under-file", ["compare", "--out", "{tmp}/file/o"], "--out"),
    ("compare-data-root-missing", ["compare", "--out", "{tmp}/o", "--data-root", "{tmp}/none"], "--data-root"),
    ("compare-dataset-unknown", ["compare", "--out", "{tmp}/o", "--dataset", "x"], "--dataset"),
    ("compare-dataset-format", ["compare", "--out", "{tmp}/o", "--dataset", "{tmp}/file"], "unknown data format"),
    ("compare-out-holds-run", ["compare", "--out", "{tmp}/done"], "already holds a run"),
    ("compare-choice-typo", ["compare", "--item-text", "tfid"], "did you mean 'tfidf'?"),
    ("compare-agent-typo", ["compare", "--out", "{tmp}/o", "--agents", "popularty"], "did you mean 'popularity'?"),
    ("ope-folds-one", ["ope", "--out", "{tmp}/o", "--folds", "1"], "--folds"),
    ("ope-n-sim-zero", ["ope", "--out", "{tmp}/o", "--n-sim", "0"], "--n-sim"),
    ("ope-bootstrap-negative", ["ope", "--out", "{tmp}/o", "--bootstrap", "-1"], "--bootstrap"),
    ("ope-alpha-one", ["ope", "--out", "{tmp}/o", "--alpha", "1"], "--alpha"),
    ("ope-alpha-zero", ["ope", "--out", "{tmp}/o", "--alpha", "0"], "--alpha"),
    ("ope-clip-zero", ["ope", "--out", "{tmp}/o", "--clip", "0"], "--clip"),
    ("ope-switch-negative", ["ope", "--out", "{tmp}/o", "--switch-lambda", "-1"], "--switch-lambda"),
    ("ope-seed-negative", ["ope", "--out", "{tmp}/o", "--seed", "-1"], "--seed"),
    ("ope-data-root-missing", ["ope", "--out", "{tmp}/o", "--data-root", "{tmp}/none"], "--data-root"),
    ("ope-data-dir-renamed", ["ope", "--data-dir", "{tmp}"], "did you mean '--data-root'?"),
    ("ope-same-policy", ["ope", "--out", "{tmp}/o", "--evaluate", "random"], "--evaluate"),
    ("ope-out-file", ["ope", "--out", "{tmp}/file"], "--out"),
    ("ope-out-holds-run", ["ope", "--out", "{tmp}/done"], "--overwrite"),
    ("coldstart-out-holds-run", ["coldstart", "--out", "{tmp}/done"], "--overwrite"),
    ("ope-behavior-unknown", ["ope", "--out", "{tmp}/o", "--behavior", "greedy"], "--behavior"),
    ("command-unknown", ["serve"], "serve"),
    ("command-typo", ["trian"], "unknown command 'trian' (did you mean 'train'?)"),
    ("train-nproc-zero", ["train", "sasrec", "--out", "{tmp}/o", "--nproc", "0"], "--nproc"),
    ("train-nproc-resume", ["train", "sasrec", "--out", "{tmp}/run", "--nproc", "2", "--resume"], "does not resume"),
    ("command-missing", [], "command"),
    ("bench-serving-checkpoint-missing", ["bench", "serving", "--checkpoint", "{tmp}/none"], "--checkpoint"),
    ("bench-serving-no-checkpoint", ["bench", "serving", "--out", "{tmp}/o"], "--checkpoint"),
    ("bench-serving-checkpoint-text", ["bench", "serving", "--checkpoint", "{tmp}/file"], "--checkpoint"),
    ("serve-checkpoint-missing", ["serve", "--checkpoint", "{tmp}/none"], "--checkpoint"),
    ("serve-checkpoint-empty-dir", ["serve", "--checkpoint", "{tmp}/empty"], "--checkpoint"),
    ("serve-checkpoint-text", ["serve", "--checkpoint", "{tmp}/file"], "--checkpoint"),
    ("serve-checkpoint-truncated", ["serve", "--checkpoint", "{tmp}/run"], "checkpoint.safetensors"),
    ("serve-checkpoint-not-a-model", ["serve", "--checkpoint", "{tmp}/other.safetensors"], "no model"),
    ("serve-port-too-large", ["serve", "--checkpoint", "{tmp}/run", "--port", "70000"], "--port"),
    ("serve-port-zero", ["serve", "--checkpoint", "{tmp}/run", "--port", "0"], "--port"),
    ("serve-port-word", ["serve", "--checkpoint", "{tmp}/run", "--port", "http"], "--port"),
    ("serve-checkpoint-a-simulator", ["serve", "--checkpoint", "{tmp}/sim.safetensors"], "no model and no agent"),
    ("serve-checkpoint-a-replay", ["serve", "--checkpoint", "{tmp}/replay.safetensors"], "no model and no agent"),
    ("serve-max-batch-zero", ["serve", "--checkpoint", "{tmp}/run", "--max-batch", "0"], "--max-batch"),
    ("serve-max-wait-negative", ["serve", "--checkpoint", "{tmp}/run", "--max-wait-ms", "-1"], "--max-wait-ms"),
    ("serve-deadline-inf", ["serve", "--checkpoint", "{tmp}/run", "--deadline-ms", "inf"], "--deadline-ms"),
    ("serve-max-queue-negative", ["serve", "--checkpoint", "{tmp}/run", "--max-queue", "-1"], "--max-queue"),
    ("serve-dtype-unknown", ["serve", "--checkpoint", "{tmp}/run", "--dtype", "fp16"], "--dtype"),
    ("serve-threads-negative", ["serve", "--checkpoint", "{tmp}/run", "--threads", "-1"], "--threads"),
    ("serve-wait-policy-unknown", ["serve", "--checkpoint", "{tmp}/run", "--omp-wait-policy", "x"], "--omp-wait"),
    ("serve-admin-token-spaces", ["serve", "--checkpoint", "{tmp}/run", "--admin-token", "a b"], "--admin-token"),
    (
        "bench-serving-checkpoint-a-simulator",
        ["bench", "serving", "--checkpoint", "{tmp}/sim.safetensors", "--out", "{tmp}/b"],
        "no model and no agent",
    ),
    ("bench-train-data-root-missing", ["bench", "train", "--data-root", "{tmp}/none"], "--data-root"),
    ("bench-threads-float", ["bench", "--threads", "1.5"], "--threads"),
    ("compare-agents-unknown", ["compare", "--out", "{tmp}/o", "--agents", "gpt"], "--agents"),
    ("compare-config-missing", ["compare", "--out", "{tmp}/o", "--config", "{tmp}/none.toml"], "none.toml"),
    ("train-config-missing", ["train", "sasrec", "--out", "{tmp}/o", "--config", "{tmp}/none.toml"], "none.toml"),
    ("ope-bootstrap-one", ["ope", "--out", "{tmp}/o", "--bootstrap", "1"], "--bootstrap"),
    ("ope-dros-negative", ["ope", "--out", "{tmp}/o", "--dros-lambda", "-1"], "--dros-lambda"),
    ("ope-switch-nan", ["ope", "--out", "{tmp}/o", "--switch-lambda", "nan"], "--switch-lambda"),
    ("ope-n-sim-float", ["ope", "--out", "{tmp}/o", "--n-sim", "2.5"], "--n-sim"),
    ("ope-campaign-unknown", ["ope", "--out", "{tmp}/o", "--campaign", "kids"], "--campaign"),
    ("coldstart-out-file", ["coldstart", "--out", "{tmp}/file"], "--out"),
    ("coldstart-data-root-missing", ["coldstart", "--out", "{tmp}/o", "--data-root", "{tmp}/none"], "--data-root"),
    ("coldstart-share-zero", ["coldstart", "--out", "{tmp}/o", "--share", "0"], "--share"),
    ("coldstart-share-one", ["coldstart", "--out", "{tmp}/o", "--share", "1"], "--share"),
    ("coldstart-seed-negative", ["coldstart", "--out", "{tmp}/o", "--seed", "-1"], "--seed"),
    ("coldstart-epochs-zero", ["coldstart", "--out", "{tmp}/o", "--max-epochs", "0"], "--max-epochs"),
    ("coldstart-patience-zero", ["coldstart", "--out", "{tmp}/o", "--patience", "0"], "--patience"),
    ("coldstart-id-dropout-one", ["coldstart", "--out", "{tmp}/o", "--id-dropout", "1"], "--id-dropout"),
    ("coldstart-variant-unknown", ["coldstart", "--out", "{tmp}/o", "--variants", "bert"], "--variants"),
    ("coldstart-threads-negative", ["coldstart", "--out", "{tmp}/o", "--threads", "-1"], "--threads"),
    ("evaluate-no-model", ["evaluate", "--out", "{tmp}/o"], "--model"),
    ("evaluate-model-missing", ["evaluate", "--out", "{tmp}/o", "--model", "{tmp}/none"], "--model"),
    ("evaluate-model-truncated", ["evaluate", "--out", "{tmp}/o", "--model", "{tmp}/run"], "--model"),
    ("evaluate-model-foreign", ["evaluate", "--out", "{tmp}/o", "--model", "{tmp}/other.safetensors"], "--model"),
    ("evaluate-model-text", ["evaluate", "--out", "{tmp}/o", "--model", "{tmp}/file"], "--model"),
    ("evaluate-model-empty-dir", ["evaluate", "--out", "{tmp}/o", "--model", "{tmp}/empty"], "--model"),
    (
        "evaluate-synthetic",
        ["evaluate", "--out", "{tmp}/o", "--model", "{tmp}/run", "--dataset", "synthetic"],
        "--dataset",
    ),
    ("evaluate-data-root-missing", ["evaluate", "--model", "{tmp}/run", "--data-root", "{tmp}/none"], "--data-root"),
    ("evaluate-out-holds-run", ["evaluate", "--model", "{tmp}/run", "--out", "{tmp}/done"], "--model"),
    ("evaluate-threads-negative", ["evaluate", "--model", "{tmp}/run", "--threads", "-1"], "--threads"),
]


@pytest.mark.parametrize("argv, words", [pytest.param(a, w, id=i) for i, a, w in CLI])
def test_a_bad_command_line_is_one_line_and_exit_2(tmp_path, capsys, argv, words):
    (tmp_path / "file").write_text("a file, not a directory")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{")
    (tmp_path / "empty").mkdir()
    (tmp_path / "done").mkdir()  # an earlier run's directory
    (tmp_path / "done" / "results.json").write_text('{"files": ["results.json"]}')
    save_file({"x": torch.zeros(2)}, str(tmp_path / "other.safetensors"), metadata={"note": "not recengine's"})
    if any("sim.safetensors" in a for a in argv):
        save_simulator(make_tiny_sim(), str(tmp_path / "sim.safetensors"))
    if any("replay.safetensors" in a for a in argv):
        fields = {"reward": ((), torch.float32), "done": ((), torch.bool)}
        PrioritizedReplay(4, fields).save(str(tmp_path / "replay.safetensors"))
    before = files_digest(str(tmp_path))
    assert _run(_argv(argv, str(tmp_path))) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert words in err and "error" in err, err
    assert files_digest(str(tmp_path)) == before
    assert not os.path.exists(tmp_path / "o")


@pytest.fixture(scope="module")
def user_model():
    return synthetic_user_model(
        num_users=10,
        num_items=12,
        num_genres=3,
        dim=4,
        history_len=4,
        seed=0,
        config=SimConfig(slate_size=3, history_len=4, max_steps=5),
    )


@pytest.mark.parametrize(
    "num_envs, error",
    [(2.5, TypeError), ("2", TypeError), (True, TypeError), (None, TypeError), (0, ValueError), (-1, ValueError)],
)
def test_vec_simulator_refuses_a_bad_number_of_environments(user_model, num_envs, error):
    with pytest.raises(error, match="num_envs"):
        VecRecSim(user_model, num_envs)


CONFIG_FILES = [
    # (id, the file's text, words the one-line error must hold): a file meets the checks a flag or an argument does
    ("num-envs-zero", "num_envs = 0\n", "num_envs must be"),
    ("slate-size-zero", "slate_size = 0\n", "slate_size must be"),
    ("ci-level-above-one", "ci_level = 1.5\n", "ci_level must be"),
    ("ci-level-nan", "ci_level = nan\n", "ci_level must be"),
    ("dqn-gamma-five", "[dqn]\ngamma = 5.0\n", "dqn.gamma must be"),
    ("reinforce-lr-negative", "[reinforce]\nlr = -1.0\n", "reinforce.lr must be"),
    ("encoder-heads-zero", "[dqn_encoder]\nnum_heads = 0\n", "dqn_encoder.num_heads must be"),
    ("item-text-unknown", 'item_text = "bert"\n', "item_text must be one of"),
    ("dataset-not-for-compare", 'dataset = "ml-25m"\n', "dataset must be one of"),
    ("seeds-zero", "seeds = 0\n", "seeds must be"),
    ("rl-steps-negative", "[rl_steps]\ndqn = -5\n", "rl_steps"),
    ("key-unknown", "num_env = 4\n", "unknown key num_env"),
]


@pytest.mark.parametrize("text, words", [pytest.param(t, w, id=i) for i, t, w in CONFIG_FILES])
def test_a_bad_compare_config_file_is_one_line_and_exit_2(tmp_path, capsys, text, words):
    path = tmp_path / "compare.toml"
    path.write_text(text)
    assert _run(["compare", "--out", str(tmp_path / "o"), "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert words in err and str(path) in err, err
    assert not os.path.exists(tmp_path / "o")


TRAIN_CONFIG_FILES = [
    # (id, the file's text, what the one-line error must hold: the file, the line and the key)
    ("dim-zero", "dim = 0\n", ":1: dim"),
    ("lr-nan", "max_epochs = 2\nlr = nan\n", ":2: lr"),
    ("heads-not-dividing", "dim = 6\nnum_heads = 4\n", ":2: num_heads"),
    ("dropout-one", "dropout = 1.0\n", ":1: dropout"),
    ("dim-str", 'dim = "8"\n', ":1: dim"),
    ("key-unknown", "dimm = 8\n", ":1: unknown key dimm"),
    ("not-toml", "dim = \n", "not a valid config file"),
]


@pytest.mark.parametrize("text, words", [pytest.param(t, w, id=i) for i, t, w in TRAIN_CONFIG_FILES])
def test_a_bad_train_config_file_is_one_line_and_exit_2(tmp_path, capsys, text, words):
    """`train --config` meets the checks its flags and SASRecConfig do, naming the file and the key's line."""
    path = tmp_path / "sasrec.toml"
    path.write_text(text)
    assert _run(["train", "sasrec", "--out", str(tmp_path / "o"), "--config", str(path), "--dataset", "synthetic"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert f"{path}{words}" in err or (words.startswith("not") and words in err and str(path) in err), err
    assert not os.path.exists(tmp_path / "o")


@pytest.mark.parametrize(
    "make, words",
    [
        pytest.param(lambda: CompareConfig(num_envs=0), "num_envs must be", id="compare-num-envs"),
        pytest.param(lambda: CompareConfig(ci_level=1.5), "ci_level must be", id="compare-ci-level"),
        pytest.param(lambda: DQNConfig(gamma=5.0), "gamma must be", id="dqn-gamma"),
        pytest.param(lambda: DQNConfig(batch_size=0), "batch_size must be", id="dqn-batch"),
        pytest.param(lambda: ReinforceConfig(temperature=0.0), "temperature must be", id="reinforce-temperature"),
        pytest.param(lambda: EncoderConfig(dim=0), "dim must be", id="encoder-dim"),
    ],
)
def test_a_bad_python_setting_meets_the_same_check(make, words):
    with pytest.raises(ValueError, match=words):
        make()


@pytest.mark.parametrize(
    "name, text, where",
    [
        pytest.param("c.toml", "seeds = 2\n# note\n[dqn]\nlr = 0.001\ngamma = 5.0\n", ":5: dqn.gamma", id="toml-table"),
        pytest.param("c.toml", "seeds = 2\nci_level = 1.5\n", ":2: ci_level", id="toml-top"),
        pytest.param("c.json", '{\n "seeds": 2,\n "slate_size": 0\n}\n', ":3: slate_size", id="json"),
    ],
)
def test_a_config_file_error_names_the_line(tmp_path, capsys, name, text, where):
    path = tmp_path / name
    path.write_text(text)
    assert _run(["compare", "--out", str(tmp_path / "o"), "--config", str(path)]) == 2
    assert f"{path}{where}" in capsys.readouterr().err
