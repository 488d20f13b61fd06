"""Collector and prompts: refill, batching, ordering, reproducibility across backends, fault re-runs."""

import random

import pytest

import agentgym.testing  # noqa: F401  (registers the AgentgymTest-* toy envs)
from agentgym.policies.base import Action, SamplingParams
from agentgym.pool import make_pool
from agentgym.prompts import DEFAULT_SYSTEM_PROMPT, build_messages
from agentgym.rollout import EpisodeSpec, collect, derive_seed, episode_specs

GUESS, FAULTY, ECHO = "AgentgymTest-Guess-v0", "AgentgymTest-Faulty-v0", "AgentgymTest-Echo-v0"


class SeededPolicy:
    """Picks an admissible action with random.Random(request.seed); fills token fields like a real
    backend so the collector's copying is checked. Records its batch sizes."""

    name, mode = "seeded", "choose"

    def __init__(self, expert: bool = False):
        self.expert, self.batches, self.requests = expert, [], []

    def act(self, requests, sampling):
        self.batches.append(len(requests))
        self.requests += requests
        out = []
        for r in requests:
            if self.expert:
                choice = r.admissible_actions.index(r.info["expert_action"])
            else:
                choice = random.Random(r.seed).randrange(len(r.admissible_actions))
            candidates = [[i] for i in range(len(r.admissible_actions))]
            out.append(Action(text=r.admissible_actions[choice], prompt_ids=[len(r.messages)], response_ids=[7, 8],
                              response_logprobs=[-0.5, -0.25], candidate_ids=candidates, choice=choice,
                              choice_logprob=-1.0))
        return out


def as_dicts(trajectories):
    return [t.to_dict() for t in trajectories]


# -- episode specs ----------------------------------------------------------------------------

def test_episode_specs_groups_and_determinism():
    specs = episode_specs(12, group_size=4, seed=7, iteration=0)
    assert len(specs) == 12 and [s.group for s in specs] == [0] * 4 + [1] * 4 + [2] * 4
    assert len({s.seed for s in specs[:4]}) == 1 and len({s.seed for s in specs}) == 3   # one task per group
    assert len({s.sample_seed for s in specs}) == 12                                     # distinct samples
    assert episode_specs(12, 4, seed=7, iteration=0) == specs
    assert {s.seed for s in episode_specs(12, 4, seed=7, iteration=1)}.isdisjoint({s.seed for s in specs})
    with pytest.raises(ValueError, match="multiple of group_size"):
        episode_specs(10, group_size=4)
    assert derive_seed(1, 2) == derive_seed(1, 2) != derive_seed(2, 1) and 0 <= derive_seed(-5) < 2**31


# -- prompts ----------------------------------------------------------------------------------

def test_build_messages_layout_and_history():
    history = [("obs0", "act0"), ("obs1", "act1"), ("obs2", "act2")]
    m = build_messages("find it", history, "obs3", ["a", "b"], "choose", history_turns=2)
    assert [x["role"] for x in m] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert m[0]["content"] == DEFAULT_SYSTEM_PROMPT + "\n\nTask: find it"
    assert [x["content"] for x in m[1:5]] == ["obs1", "act1", "obs2", "act2"]
    assert m[-1]["content"] == "obs3\n\nValid actions:\na\nb"
    assert len(build_messages("t", history, "o", ["a"], "generate", history_turns=0)) == 2
    assert len(build_messages("t", history, "o", ["a"], "generate", history_turns=10)) == 8
    custom = build_messages("", [], "o", None, "generate", 1, system_prompt="Play chess.")
    assert custom[0]["content"] == "Play chess." and custom[-1]["content"] == "o"
    with pytest.raises(ValueError, match="choose mode needs admissible actions"):
        build_messages("t", [], "o", None, "choose", 1)
    with pytest.raises(ValueError, match="Unknown action mode"):
        build_messages("t", [], "o", ["a"], "sample", 1)


# -- collector, local -------------------------------------------------------------------------

def test_collect_refills_slots_keeps_order_and_fills_turns():
    specs = episode_specs(10, group_size=2, seed=3)
    policy, seen = SeededPolicy(expert=True), []
    with make_pool(GUESS, 3, backend="local", with_expert=True) as pool:
        trajs, metrics = collect(pool, policy, specs, SamplingParams(),
                                 progress=lambda done, total, t: seen.append((done, total)))
    assert [(t.seed, t.group) for t in trajs] == [(s.seed, s.group) for s in specs]
    assert seen == [(i, 10) for i in range(1, 11)]
    assert all(t.success for t in trajs) and metrics["success_rate"] == 1.0   # the expert bisects: <= 3 guesses
    assert metrics["episodes"] == 10 and metrics["env_steps"] == sum(t.num_turns for t in trajs)
    assert metrics["dropped_episodes"] == 0 and metrics["mean_return"] == 1.0 and 1 <= metrics["mean_turns"] <= 4
    assert policy.batches[0] == 3 and max(policy.batches) == 3      # all waiting slots in one act call
    t = trajs[0]
    assert t.instruction.startswith("Find the secret") and t.env_id == GUESS and t.info["policy"] == "seeded"
    first = t.turns[0]
    assert first.observation.startswith("I picked") and first.action == first.response == "guess 3"
    assert first.response_ids == [7, 8] and first.response_logprobs == [-0.5, -0.25] and first.choice == 3
    assert first.prompt_ids == [2] and first.candidate_ids[3] == [3] and first.choice_logprob == -1.0
    assert first.info["expert_action"] == "guess 3" and "instruction" not in first.info   # the decision's info
    assert t.turns[-1].terminated and t.turns[-1].reward == 1.0 and t.turns[-1].info["success"]
    # later turns show the previous (observation, action) pair: history_turns=1
    later = [r for r in policy.requests if len(r.messages) > 2]
    assert later and all(len(r.messages) == 4 and r.messages[2]["role"] == "assistant" for r in later)
    assert all(r.seed == derive_seed(specs[0].sample_seed, 0) for r in policy.requests[:1])


def test_same_seeds_same_trajectories_whatever_the_pool_size():
    specs = episode_specs(8, group_size=4, seed=11)
    runs = []
    for num_envs in (1, 3, 8):
        with make_pool(GUESS, num_envs, backend="local") as pool:
            runs.append(as_dicts(collect(pool, SeededPolicy(), specs)[0]))
    assert runs[0] == runs[1] == runs[2]
    # episodes of a group share the task but sample differently
    assert len({tuple(turn["action"] for turn in t["turns"]) for t in runs[0][:4]}) > 1


def test_local_env_exception_drops_and_reruns_episode(tmp_path):
    specs = episode_specs(4, 1, seed=0)
    with make_pool(FAULTY, 2, backend="local") as pool:
        clean = as_dicts(collect(pool, SeededPolicy(), specs)[0])
    kwargs = {"fault": "raise", "at_step": 2, "marker": str(tmp_path / "raised")}
    with make_pool(FAULTY, 2, backend="local", env_kwargs=kwargs) as pool:
        trajs, metrics = collect(pool, SeededPolicy(), specs)
    assert metrics["dropped_episodes"] == 1 and metrics["episodes"] == 4
    assert sum(t.info["dropped_restarts"] for t in trajs) == 1
    for t in trajs:
        t.info["dropped_restarts"] = 0
    assert as_dicts(trajs) == clean        # the re-run is identical to a run without the fault


def test_persistent_failure_raises_and_leaves_pool_usable():
    with make_pool(FAULTY, 2, backend="local", env_kwargs={"fault": "raise", "at_step": 1}) as pool:
        with pytest.raises(RuntimeError, match="failed 3 times"):
            collect(pool, SeededPolicy(), episode_specs(2, 1, seed=0))
        pool.reset(0, 0)                   # nothing left in flight
        assert pool.wait()[0].error is None


def test_an_episode_that_always_breaks_is_given_up_while_others_finish():
    """Other episodes finishing between its failures reset its streak (faults at random in a busy pool
    never stop a run); once nothing else finishes, max_retries in a row end it, and 4 x max_retries
    failures in all end it in any case."""
    import re

    def failures_of_the_bad_episode(num_episodes, num_envs):
        specs = episode_specs(num_episodes, 1, seed=0)
        kwargs = {"fault": "raise", "at_step": 2, "fault_seeds": [specs[0].seed]}   # episode 0 breaks every time
        with make_pool(FAULTY, num_envs, backend="local", env_kwargs=kwargs, with_expert=True) as pool:
            trajs, _ = collect(pool, SeededPolicy(expert=True), specs, max_retries=2, on_failure="record")
        assert trajs[0].info["status"] == "error" and all("status" not in t.info and t.turns for t in trajs[1:])
        return re.search(r"failed (\d+) times \((\d+) in a row", trajs[0].info["error"]).groups()

    total, in_a_row = failures_of_the_bad_episode(8, num_envs=2)
    assert int(total) > 2 and in_a_row == "2"          # retried while the others finished, then given up
    assert failures_of_the_bad_episode(64, num_envs=4)[0] == "8"    # the cap: 4 x max_retries


def test_policy_must_return_one_action_per_request():
    class Broken(SeededPolicy):
        def act(self, requests, sampling):
            return super().act(requests, sampling)[:-1]

    with make_pool(GUESS, 2, backend="local") as pool:
        with pytest.raises(RuntimeError, match="one Action per Request"):
            collect(pool, Broken(), episode_specs(2, 1, seed=0))


def test_generate_mode_on_open_action_space():
    class Talker:
        name, mode = "talker", "generate"

        def act(self, requests, sampling):
            assert requests[0].admissible_actions is None
            return [Action(text="stop" if "You said" in r.messages[-1]["content"] else "hello") for r in requests]

    with make_pool(ECHO, 2, backend="local") as pool:
        trajs, metrics = collect(pool, Talker(), [EpisodeSpec(0), EpisodeSpec(1)], history_turns=0)
    assert [t.action for t in trajs[0].turns] == ["hello", "stop"] and metrics["success_rate"] == 1.0


def test_timing_records_status_and_wall_time_per_episode():
    with make_pool(GUESS, 2, backend="local") as pool:
        trajs, _ = collect(pool, SeededPolicy(), episode_specs(3, 1, seed=4), timing=True)
    assert all(t.info["status"] == "ok" and t.info["wall_s"] > 0 for t in trajs)


def test_an_episode_past_its_time_limit_ends_as_timeout_and_the_rest_run():
    with make_pool(GUESS, 1, backend="local") as pool:
        trajs, metrics = collect(pool, SeededPolicy(), episode_specs(2, 1, seed=4), episode_timeout_s=0.0, timing=True)
    # a limit of 0 s ends every episode at its first decision after reset, before any turn
    assert [t.info["status"] for t in trajs] == ["timeout", "timeout"] and all(not t.turns for t in trajs)
    assert metrics["episodes"] == 2 and metrics["success_rate"] == 0.0


def test_on_failure_record_ends_a_broken_episode_as_error_and_keeps_the_others():
    kwargs = {"fault": "raise", "at_step": 1}            # every episode of this env fails on its first step
    with make_pool(FAULTY, 1, backend="local", env_kwargs=kwargs) as pool:
        with pytest.raises(RuntimeError, match="failed 2 times"):
            collect(pool, SeededPolicy(), episode_specs(2, 1, seed=3), max_retries=2)
    with make_pool(FAULTY, 1, backend="local", env_kwargs=kwargs) as pool:
        trajs, metrics = collect(pool, SeededPolicy(), episode_specs(2, 1, seed=3), max_retries=2, on_failure="record")
    assert [t.info["status"] for t in trajs] == ["error", "error"] and "injected error" in trajs[0].info["error"]
    assert metrics["dropped_episodes"] == 4 and not any(t.success for t in trajs)


# -- collector, Ray ---------------------------------------------------------------------------

def test_ray_and_local_pools_give_identical_trajectories(ray_up):
    specs = episode_specs(9, group_size=3, seed=5)
    with make_pool(GUESS, 2, backend="local", with_expert=True) as pool:
        local, _ = collect(pool, SeededPolicy(), specs, history_turns=2)
    with make_pool(GUESS, 4, backend="ray", num_workers=2, with_expert=True) as pool:
        remote, metrics = collect(pool, SeededPolicy(), specs, history_turns=2)
    assert as_dicts(remote) == as_dicts(local)
    assert metrics["episodes"] == 9 and metrics["restarts"] == 0 and metrics["steps_per_s"] > 0


def test_ray_crash_mid_run_reruns_episode(ray_up, tmp_path):
    specs = episode_specs(6, 1, seed=1)
    with make_pool(FAULTY, 2, backend="local") as pool:
        clean = as_dicts(collect(pool, SeededPolicy(), specs)[0])
    kwargs = {"fault": "exit", "at_step": 2, "marker": str(tmp_path / "crashed")}
    with make_pool(FAULTY, 4, backend="ray", num_workers=2, env_kwargs=kwargs) as pool:
        trajs, metrics = collect(pool, SeededPolicy(), specs)
    # the dead actor took its other slot's episode too (dropped as well, unless it had just finished)
    assert metrics["restarts"] == 1 and 1 <= metrics["dropped_episodes"] <= 2
    assert sum(t.info["dropped_restarts"] for t in trajs) == metrics["dropped_episodes"]
    for t in trajs:
        t.info["dropped_restarts"] = 0
    assert as_dicts(trajs) == clean


def test_ray_hung_step_times_out_and_episode_reruns(ray_up, tmp_path):
    specs = episode_specs(3, 1, seed=2)
    kwargs = {"fault": "sleep", "at_step": 1, "sleep_s": 60.0, "marker": str(tmp_path / "slept")}
    with make_pool(FAULTY, 2, backend="ray", num_workers=2, step_timeout_s=1.0, env_kwargs=kwargs) as pool:
        trajs, metrics = collect(pool, SeededPolicy(), specs)
    assert metrics["timeouts"] == 1 and metrics["restarts"] == 1 and metrics["dropped_episodes"] == 1
    assert metrics["episodes"] == 3 and metrics["wall_time_s"] < 20
