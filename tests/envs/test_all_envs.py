"""Every registered env passes check-env, and thousands of malformed actions raise nothing."""

import pytest

import agentgym
from agentgym.check import check_env, malformed_actions

ENV_IDS = sorted(i for i, s in agentgym.registry().items() if s.family != "agentgym-test")


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_env(env_id):
    problems = check_env(env_id, fuzz=100)
    assert not problems, "\n".join(f"[{p.check}] {p.message}" for p in problems)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_thousands_of_malformed_actions(env_id):
    env = agentgym.make(env_id)
    env.reset(seed=1)
    invalid = 0
    actions = malformed_actions(2000, seed=7)
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        assert isinstance(obs, str) and isinstance(reward, (int, float))
        invalid += bool(info.get("invalid_action"))
        if terminated or truncated:
            env.reset(seed=1)
    env.close()
    assert invalid > 0.9 * len(actions)
