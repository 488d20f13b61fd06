"""MiniHack family: the real NLE game behind the text contract."""

import random
import warnings

import gymnasium as gym
import pytest

import agentgym
from agentgym.core import has_capability
from agentgym.envs.minihack import render as R

warnings.filterwarnings("ignore", message=".*pkg_resources.*")
IDS = [i for i, s in agentgym.registry().items() if s.family == "minihack"]


def run_expert(env, seed):
    obs, info = env.reset(seed=seed)
    done, steps = False, 0
    while not done:
        action = env.unwrapped.expert_action()
        assert action in info["admissible_actions"], (action, info["admissible_actions"])
        obs, reward, term, trunc, info = env.step(action)
        assert not info["invalid_action"], obs
        done, steps = term or trunc, steps + 1
    return info, reward, steps


def test_registry_and_gymnasium_make():
    assert IDS[0] == "MiniHack-Room-5x5-v0"
    assert agentgym.resolve_id("minihack") == "MiniHack-Room-5x5-v0"
    for needed in ("MiniHack-Room-15x15-v0", "MiniHack-Corridor-R2-v0", "MiniHack-KeyRoom-S5-v0", "MiniHack-River-v0"):
        assert needed in IDS
        assert agentgym.spec(needed).kwargs["task"] == needed
    env = gym.make("agentgym/MiniHack-Room-5x5-v0")
    obs, info = env.reset(seed=0)
    assert isinstance(obs, str) and "staircase down" in obs
    env.close()


@pytest.mark.parametrize("env_id", IDS)
def test_contract(env_id):
    env = agentgym.make(env_id)
    obs, info = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    assert info["instruction"] and info["success"] is False and info["invalid_action"] is False
    assert {"north", "south", "east", "west", "northeast"} <= set(info["admissible_actions"])
    obs, reward, term, trunc, info = env.step("north")
    assert isinstance(reward, float) and isinstance(term, bool) and isinstance(trunc, bool)
    assert set(info) >= {"admissible_actions", "success", "invalid_action", "instruction"}
    assert "@" in env.unwrapped.render()
    assert not has_capability(env, "snapshot")          # NLE cannot snapshot
    assert has_capability(env, "expert_action")
    env.close()


@pytest.mark.parametrize("env_id", ["MiniHack-KeyRoom-S5-v0", "MiniHack-Corridor-R2-v0", "MiniHack-Room-Random-5x5-v0"])
def test_seeding(env_id):
    env = agentgym.make(env_id)
    first = env.reset(seed=7)[0], env.unwrapped.render()
    again = env.reset(seed=7)[0], env.unwrapped.render()
    assert first == again
    others = {env.reset(seed=s)[0] + env.unwrapped.render() for s in range(8, 14)}
    assert len(others) > 1
    env.close()


def test_observation_names_stairs_with_direction():
    env = agentgym.make("MiniHack-Room-5x5-v0")
    obs, _ = env.reset(seed=0)                 # fixed layout: start top-left, stairs bottom-right
    assert "staircase down: 4 east, 4 south" in obs
    assert len(obs) < 600
    obs, *_ = env.step("southeast")
    assert "staircase down: 3 east, 3 south" in obs
    env.close()


def test_parser_accepts_common_forms():
    env = agentgym.make("MiniHack-KeyRoom-S5-v0").unwrapped
    env.reset(seed=0)
    cases = {"north": "north", " North. ": "north", "go north": "north", "move: east": "east",
             "Action: east": "east", "Thought: the key is below me.\nAction: south": "south",
             "NE": "northeast", "north-west": "northwest", "south west": "southwest", "pickup": "pick up",
             "Pick up the key.": "pick up", "use key": "apply key", "`west`": "west", "I will go west now": "west"}
    for text, want in cases.items():
        assert env.parse_action(text)[0] == want, text
    for bad in ["", "   ", "fly", "north or south", "\x00\ud7ff", None, 3, "x" * 100_000]:
        assert env.parse_action(bad)[0] is None, bad


@pytest.mark.parametrize("env_id", IDS)
def test_fuzz_never_raises(env_id):
    env = agentgym.make(env_id, max_turns=100_000)
    env.reset(seed=1)
    rng = random.Random(0)
    alphabet = "abcdefghijklmnopqrstuvwxyz NSEW.:-!?\n\t\u00e9\u4e2d\U0001f600\x00"
    flagged = 0
    for i in range(2000):
        n = rng.choice([0, 1, 3, 8, 30, 200, 5000])
        text = "".join(rng.choice(alphabet) for _ in range(n))
        if i % 100 == 0:
            text = rng.choice(["pick up", "apply key", "kick north", "search", "open west"])  # maybe inadmissible
        word, _ = env.unwrapped.parse_action(text)
        admissible = env.unwrapped.admissible_actions()
        obs, reward, term, trunc, info = env.step(text)
        assert isinstance(obs, str) and obs
        if word is None or word not in admissible:
            assert info["invalid_action"] and reward == 0.0 and not term and "Valid actions now" in obs
            flagged += 1
        if term or trunc:
            env.reset(seed=i)
    assert flagged > 1500
    env.close()


def test_episode_over_does_not_raise():
    env = agentgym.make("MiniHack-Room-5x5-v0").unwrapped
    env.reset(seed=0)
    for _ in range(4):
        obs, reward, term, trunc, info = env.step("southeast")
    assert term and info["success"] and reward > 0
    obs, reward, term, trunc, info = env.step("north")
    assert info["invalid_action"] and reward == 0.0 and "reset" in obs


def test_apply_key_flow():
    env = agentgym.make("MiniHack-KeyRoom-S5-v0")
    obs, info = env.reset(seed=2)
    assert "apply key" not in info["admissible_actions"]
    assert "Wall to the east" in obs                   # seed 2 starts against the east wall
    obs, r, term, trunc, info = env.step("apply key")
    assert info["invalid_action"] and "not possible now" in obs
    # the expert picks up the key, walks beside the door, then applies the key
    actions = []
    while "apply key" not in info["admissible_actions"]:
        actions.append(env.unwrapped.expert_action())
        obs, r, term, trunc, info = env.step(actions[-1])
        assert not term and len(actions) < 40
    assert "pick up" in actions and "Inventory:" in obs and "key named" in obs
    assert "closed door: 1 " in obs
    obs, r, term, trunc, info = env.step("apply key")
    assert not info["invalid_action"]
    assert "closed door" not in obs and "apply key" not in info["admissible_actions"]
    info, reward, _ = run_expert_continue(env, info)
    assert info["success"] and reward > 0.5


def run_expert_continue(env, info):
    done, steps, reward = False, 0, 0.0
    while not done:
        obs, reward, term, trunc, info = env.step(env.unwrapped.expert_action())
        done, steps = term or trunc, steps + 1
    return info, reward, steps


@pytest.mark.parametrize("env_id,seeds,need", [
    ("MiniHack-Room-5x5-v0", range(3), 3), ("MiniHack-Room-15x15-v0", range(3), 3),
    ("MiniHack-Room-Random-5x5-v0", range(5), 5), ("MiniHack-Corridor-R2-v0", range(2, 8), 5),
    ("MiniHack-KeyRoom-S5-v0", range(6), 6)])
def test_expert_solves(env_id, seeds, need):
    env = agentgym.make(env_id)
    wins = 0
    for seed in seeds:
        info, reward, steps = run_expert(env, seed)
        assert info["end_status"] in ("TASK_SUCCESSFUL", "ABORTED", "RUNNING", "DEATH")
        if info["success"]:
            assert info["end_status"] == "TASK_SUCCESSFUL" and reward > 0.5
            wins += 1
    assert wins >= need, f"{env_id}: expert solved {wins}/{len(seeds)}"
    env.close()


def test_offset_words():
    assert R.offset_words(2, 1) == "2 east, 1 south"
    assert R.offset_words(-3, -3) == "3 west, 3 north"
    assert R.offset_words(0, 0) == "here"
