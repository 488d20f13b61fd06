"""Shared helpers for the trainer tests: a small config on the toy guessing env (local pool)."""

from __future__ import annotations

import pytest

import agentgym.testing  # noqa: F401  (registers AgentgymTest-Guess-v0)


def small_cfg(tmp_path, algo: str = "grpo", *overrides: str):
    from agentgym.config import load_config

    base = ["rollout.pool=local", "rollout.num_envs=2", "train.iterations=2", "train.episodes_per_iter=4",
            "train.minibatch_size=8", "eval.every=1", "eval.episodes=2", "checkpoint.every=1",
            f"output_dir={tmp_path}", "run_name=run", "env.max_turns=4"]
    if algo == "grpo":
        base.append("algo.group_size=2")
    cfg = load_config(env="AgentgymTest-Guess-v0", algo=algo, overrides=base + list(overrides))
    cfg.env.kwargs = {"n": 4}
    cfg.logging.progress = False
    return cfg


@pytest.fixture
def make_cfg(tmp_path):
    return lambda algo="grpo", *ov: small_cfg(tmp_path, algo, *ov)
