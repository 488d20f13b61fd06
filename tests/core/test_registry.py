import os
import subprocess
import sys

import gymnasium as gym
import pytest

import agentgym
from agentgym.registry import UnknownEnvError, resolve_id

PLUGIN_ENV = '''
import gymnasium as gym
import agentgym


class LeftRightEnv(agentgym.TextEnv):
    """Walk to the right end of a 4-cell line."""

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = 0
        return "You are at 0 of 3.", {"instruction": "Reach cell 3.", "admissible_actions": ["left", "right"]}

    def step(self, action):
        info = {"admissible_actions": ["left", "right"], "invalid_action": False}
        a = str(action).strip().lower()
        if a not in ("left", "right"):
            info["invalid_action"] = True
            return f"Unknown action {a[:30]!r}; say left or right.", 0.0, False, False, info
        self.pos = max(0, self.pos + (1 if a == "right" else -1))
        done = self.pos == 3
        if done:
            info["success"] = True
        return f"You are at {self.pos} of 3.", float(done), done, False, info


def register_envs():
    agentgym.register("LeftRight-v0", "my_agentgym_plugin:LeftRightEnv", max_turns=12,
                      family="leftright", description="A throwaway plugin env")
'''


@pytest.fixture()
def plugin_path(tmp_path):
    """A separate package, visible only through its entry point (a dist-info on sys.path)."""
    (tmp_path / "my_agentgym_plugin.py").write_text(PLUGIN_ENV)
    dist = tmp_path / "my_agentgym_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-agentgym-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[agentgym.envs]\nleftright = my_agentgym_plugin:register_envs\n")
    return tmp_path


def run_cli(args, plugin_path, timeout=600):
    """Run the CLI in a fresh process that sees the plugin only through PYTHONPATH."""
    env = {**os.environ, "PYTHONPATH": str(plugin_path), "RAY_USAGE_STATS_ENABLED": "0"}
    return subprocess.run([sys.executable, "-m", "agentgym.cli", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=plugin_path)


def test_register_make_and_gymnasium_make():
    agentgym.register("UnitLine-v0", "tests_plugin_stub:Missing",
                      max_turns=3, family="unitline")
    assert resolve_id("UnitLine") == "UnitLine-v0"
    assert resolve_id("unitline") == "UnitLine-v0"
    assert "agentgym/UnitLine-v0" in gym.registry
    with pytest.raises(ImportError, match="could not be imported"):
        agentgym.make("UnitLine-v0")


def test_unknown_env_message_lists_ids():
    with pytest.raises(UnknownEnvError) as e:
        resolve_id("NoSuchEnv-v9")
    assert "Registered ids" in str(e.value) and "agentgym envs" in str(e.value)


def test_builtin_minihack_registered():
    ids = agentgym.registry()
    for name in ["MiniHack-Room-5x5-v0", "MiniHack-Room-15x15-v0", "MiniHack-Corridor-R2-v0",
                 "MiniHack-KeyRoom-S5-v0", "MiniHack-River-v0"]:
        assert name in ids
    assert resolve_id("minihack") == "MiniHack-Room-5x5-v0"
    env = gym.make("agentgym/MiniHack-Room-5x5-v0")
    obs, info = env.reset(seed=0)
    assert isinstance(obs, str) and info["instruction"]
    env.close()


def test_plugin_env_listed_and_made_through_entry_point(plugin_path):
    out = run_cli(["envs"], plugin_path)
    assert out.returncode == 0, out.stderr
    assert "LeftRight-v0" in out.stdout and "throwaway plugin" in out.stdout
    out = run_cli(["check-env", "LeftRight-v0", "--fuzz", "300"], plugin_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "passes" in out.stdout


@pytest.mark.slow
def test_plugin_env_trains_without_changes_to_agentgym(plugin_path):
    out = run_cli(["train", "--env", "LeftRight-v0", "--algo", "grpo", "train.iterations=2",
                   "train.episodes_per_iter=8", "algo.group_size=4", "rollout.pool=local", "rollout.num_envs=4",
                   "eval.episodes=4", "eval.every=0", "checkpoint.every=0", f"output_dir={plugin_path}/runs",
                   "run_name=plugin"], plugin_path)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    assert (plugin_path / "runs" / "plugin" / "metrics.jsonl").exists()
