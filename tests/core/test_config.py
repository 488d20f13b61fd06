import subprocess
import sys

import pytest

from agentgym.config import ConfigError, group_options, load_config


def test_groups_and_overrides_compose():
    cfg = load_config(env="minihack", algo="ppo", model="agentgym-tiny",
                      overrides=["train.iterations=3", "train.lr=0.01", "env.kwargs.foo=1", "policy.mode=generate"])
    assert cfg.algo.name == "ppo" and "gae_lambda" in cfg.algo
    assert cfg.train.iterations == 3 and cfg.train.lr == 0.01 and isinstance(cfg.train.lr, float)
    assert cfg.env.id == "MiniHack-Room-5x5-v0" and cfg.env.kwargs.foo == 1
    assert cfg.policy.mode == "generate" and cfg.model.path == "agentgym-tiny"
    assert {"grpo", "ppo"} <= set(group_options("algo"))


def test_model_path_passthrough():
    assert load_config(model="/some/local/folder").model.path == "/some/local/folder"


def test_yaml_file_merged(tmp_path):
    f = tmp_path / "exp.yaml"
    f.write_text("train:\n  iterations: 7\nrollout:\n  pool: local\n")
    cfg = load_config(env="minihack", config_file=str(f))
    assert cfg.train.iterations == 7 and cfg.rollout.pool == "local"
    f.write_text("train:\n  iteration: 7\n")
    with pytest.raises(ConfigError, match="train.iterations"):
        load_config(config_file=str(f))


@pytest.mark.parametrize("override, expected", [
    ("train.iteratons=3", "Valid keys under train: .*train.iterations"),
    ("train.iteratons=3", "train.warm_start[,.]"),                     # sub-sections are listed too
    ("train.warm_start.epoch=1", "Valid keys under train.warm_start: .*train.warm_start.epochs"),
    ("bogus=1", "Valid keys: .*algo.*train"),
    ("algo.clip=0.1", "algo.clip_eps"),
    ("policy.mode=sample", "Valid values: choose, generate"),
    ("rollout.pool=dask", "Valid values: ray, local"),
    ("train.lr=fast", "expected float"),
    ("train.iterations=2.5", "expected int"),
    ("logging.tensorboard=maybe", "expected true or false"),
    ("seed", "write key=value"),
])
def test_bad_overrides_are_rejected_with_valid_options(override, expected):
    with pytest.raises(ConfigError, match=expected):
        load_config(env="minihack", algo="grpo", overrides=[override])


def test_unknown_algo_and_env():
    with pytest.raises(ConfigError, match="Available: .*grpo.*ppo"):
        load_config(algo="reinforce++")
    with pytest.raises(ConfigError, match="Unknown environment 'webshopp'.*Registered ids"):
        load_config(env="webshopp")


@pytest.mark.parametrize("args, expected", [
    (["train", "--env", "nosuchenv"], "Unknown environment"),
    (["train", "--env", "minihack", "--algo", "nosuchalgo"], "Unknown algorithm"),
    (["train", "--env", "minihack", "train.iteratons=1"], "Unknown config key"),
    (["check-env", "Nope-v0"], "Unknown environment"),
    (["eval", "--env", "minihack", "--model", "nobody/no-such-model", "rollout.pool=local"], "Provide the weights offline"),
    (["train", "--env", "minihack", "train.episodes_per_iter=30"], "multiple of algo.group_size"),
])
def test_cli_bad_input_is_one_paragraph(args, expected):
    out = subprocess.run([sys.executable, "-m", "agentgym.cli", *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert expected in out.stderr
    assert "Traceback" not in out.stderr
    assert "\n\n" not in out.stderr.strip()


def test_group_picked_by_override():
    cfg = load_config(overrides=["model=smollm2-135m", "algo=ppo", "env=minihack", "train.iterations=2"])
    assert cfg.model.path == "smollm2-135m" and cfg.algo.name == "ppo" and cfg.train.iterations == 2
    assert load_config(algo="grpo", overrides=["algo=ppo"]).algo.name == "grpo"   # the explicit flag wins
