"""The multi-agent conventions: SeatEnv's single-seat view, partners, self-play and per-seat splitting."""

from __future__ import annotations

import pytest

import agentgym
import agentgym.testing  # noqa: F401  (registers AgentgymTest-Meet-v0)
from agentgym.check import check_env
from agentgym.multiagent import SeatEnv, make_partner, split_seats
from agentgym.policies import make_policy
from agentgym.pool import make_pool
from agentgym.rollout import EpisodeSpec, collect
from agentgym.testing import MeetGame, train_one_iteration


def play_with_bot(env, seed):
    obs, info = env.reset(seed=seed)
    total, steps = 0.0, 0
    while True:
        obs, r, term, trunc, info = env.step(env.unwrapped.expert_action())
        total, steps = total + r, steps + 1
        if term or trunc:
            return total, info, steps


def test_seat_view_shows_only_the_learner_seat_and_bots_play_the_rest():
    env = SeatEnv(MeetGame(), seat="b")
    obs, info = env.reset(seed=3)
    assert info["agent"] == "b" and info["seat"] == "b"
    assert "a said:" in obs          # a (a bot) spoke first, so b's first decision comes after it
    assert "admissible_actions" not in info   # speech is free text
    obs, r, term, trunc, info = env.step("I am on cell 4.")
    assert info["admissible_actions"] == ["left", "right", "stay"]
    assert not (term or trunc)


def test_bot_partners_meet_and_the_learner_gets_its_reward():
    for seed in range(5):
        total, info, steps = play_with_bot(agentgym.make("AgentgymTest-Meet-v0"), seed)
        assert info["success"] is True and total == 1.0, (seed, info)
        assert info["agent_success"] == {"a": True, "b": True}


def test_invalid_move_is_an_observation_and_reported_for_the_learner():
    env = SeatEnv(MeetGame(), seat="a")
    env.reset(seed=0)
    env.step("hello")                            # a's speech; b's bot speaks next
    obs, r, term, trunc, info = env.step("fly away")
    assert info["invalid_action"] is True and info["agent_invalid"] == {"a": True}
    obs, r, term, trunc, info = env.step("stay")
    assert info["invalid_action"] is False


def test_random_seat_draws_both_seats_reproducibly():
    env = SeatEnv(MeetGame(), seat="random")
    seats = [env.reset(seed=s)[1]["seat"] for s in range(20)]
    assert set(seats) == {"a", "b"}
    assert seats == [env.reset(seed=s)[1]["seat"] for s in range(20)]


def test_partners_from_specs_and_clear_errors():
    game = MeetGame()
    game.reset(seed=1)
    assert make_partner("bot")(game, "a", "", {}) == game.bot_action("a")
    info = {"admissible_actions": ["left", "right"]}
    assert make_partner("random", seed=0)(game, "a", "", info) in ("left", "right")
    policy_play = make_partner({"backend": "random"})
    assert policy_play(game, "a", "obs", {**info, "instruction": "meet"}) in ("left", "right")
    with pytest.raises(ValueError, match="backend"):
        make_partner({"model": "x"})
    with pytest.raises(ValueError, match="Unknown partner"):
        make_partner(42)
    with pytest.raises(ValueError, match="Unknown seat"):
        SeatEnv(MeetGame(), seat="c")


def test_meet_view_passes_the_text_env_contract():
    assert check_env("AgentgymTest-Meet-v0", fuzz=300) == []


class RecordingExpert:
    """The expert policy, remembering every request it answered."""
    name, mode = "recording-expert", "generate"

    def __init__(self):
        self.requests = []
        self.inner = make_policy("expert")

    def act(self, requests, sampling=None):
        self.requests += requests
        return self.inner.act(requests, sampling)


def test_self_play_collects_one_trajectory_per_seat_without_leaking_the_other_seat():
    pool = make_pool("AgentgymTest-Meet-v0", 2, backend="local", env_kwargs={"seat": "all"}, with_expert=True)
    policy = RecordingExpert()
    try:
        trajs, metrics = collect(pool, policy, [EpisodeSpec(seed=s) for s in range(4)], history_turns=3)
    finally:
        pool.close()
    for req in policy.requests:        # a seat's prompt holds only its own task and its own past
        seat = req.info["agent"]
        text = "\n".join(m["content"] for m in req.messages)
        assert f"You are {seat}." in text
        other = "b" if seat == "a" else "a"
        assert f"You are {other}." not in text
    for traj in trajs:
        seats = split_seats(traj)
        assert sorted(s.info["seat"] for s in seats) == ["a", "b"]
        assert sum(len(s.turns) for s in seats) == len(traj.turns)
        for s in seats:
            assert all(t.info["agent"] == s.info["seat"] for t in s.turns)
            assert s.success and s.episode_return == 1.0      # both get the meeting reward, once
            assert s.turns[-1].terminated and not any(t.terminated for t in s.turns[:-1])


def test_split_keeps_single_seat_trajectories_whole():
    pool = make_pool("AgentgymTest-Meet-v0", 1, backend="local", env_kwargs={"seat": "a"}, with_expert=True)
    try:
        trajs, _ = collect(pool, make_policy("expert"), [EpisodeSpec(seed=0)])
    finally:
        pool.close()
    assert split_seats(trajs[0]) == [trajs[0]]
    assert all(t.info["agent"] == "a" for t in trajs[0].turns)


def test_trainer_self_play_trains_on_every_seat(tmp_path):
    from agentgym.config import load_config

    cfg = load_config(env="AgentgymTest-Meet-v0", algo="grpo", overrides=[
        "rollout.pool=local", "rollout.num_envs=2", "train.iterations=1", "train.episodes_per_iter=4",
        "algo.group_size=2", "train.minibatch_size=16", "eval.every=0", "eval.episodes=2", "checkpoint.every=0",
        f"output_dir={tmp_path}", "run_name=run", "policy.mode=generate", "policy.sampling.max_new_tokens=4"])
    cfg.env.kwargs = {"seat": "all"}
    cfg.logging.progress = False
    state = train_one_iteration(cfg)
    assert len(state.trajectories) == 8                  # 4 episodes x 2 seats
    assert {t.info["seat"] for t in state.trajectories} == {"a", "b"}
