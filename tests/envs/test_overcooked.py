"""Overcooked: the engine through text, skills, control modes, the expert, and human-data fidelity."""

import json
from pathlib import Path

import pytest

import agentgym
from agentgym.envs.overcooked.compat import OvercookedGridworld, OvercookedState
from agentgym.envs.overcooked.game import LAYOUTS, OvercookedCentralEnv, OvercookedGame
from agentgym.multiagent import split_seats

HUMAN = Path("/work/shared/data/overcooked/human_data_sample/dummy_2020_hh_trials.csv")


def play_bots(game, seed=0):
    obs, infos = game.reset(seed=seed)
    steps = 0
    while game.agents:
        obs, rewards, terms, truncs, infos = game.step({a: game.bot_action(a) for a in game.agents if infos[a]["acting"]})
        steps += 1
    return obs, infos, steps


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_scripted_pair_delivers_soups_on_every_layout(layout):
    game = OvercookedGame(layout=layout, horizon=400)
    obs, infos, _ = play_bots(game)
    assert game.soups >= game.target, f"{layout}: the scripted pair delivered {game.soups} < target {game.target}"
    assert game.score == 20 * game.soups
    assert infos["chef_0"]["success"] and infos["chef_1"]["success"]
    assert game.agents == [] and game.tick == 400


def test_primitive_level_both_chefs_act_every_tick_and_moves_follow_the_engine():
    game = OvercookedGame(layout="cramped_room", action_level="primitive", obs_style="grid")
    obs, infos = game.reset(seed=0)
    assert all(infos[a]["acting"] for a in game.possible_agents)
    assert infos["chef_0"]["admissible_actions"] == ["north", "south", "east", "west", "stay", "interact"]
    start = game.state.players[0].position        # chef_0 starts at (1, 2) in cramped_room
    obs, rewards, *_ , infos = game.step({"chef_0": "north", "chef_1": "stay"})
    assert game.state.players[0].position == (start[0], start[1] - 1) and game.tick == 1
    # ReAd's lines are (row, col); the engine's state_string row shows chef 0 facing north (↑0)
    assert f"Agent0 local: ({start[1] - 1}, {start[0]}), direction: north, hold: nothing" in obs["chef_0"]
    grid_rows = obs["chef_0"].split("[Current Env state]:\n")[1].split("\n\n")
    assert "↑0" in grid_rows[start[1] - 1] and "↑0" not in grid_rows[start[1]]
    obs, rewards, *_, infos = game.step({"chef_0": "fly away", "chef_1": "stay"})
    assert infos["chef_0"]["invalid_action"] and not infos["chef_1"]["invalid_action"]
    assert "Invalid action" in obs["chef_0"] and game.tick == 2


def test_impossible_skill_is_an_observation_and_costs_one_tick():
    game = OvercookedGame(layout="cramped_room")
    obs, infos = game.reset(seed=0)
    assert "deliver soup" not in infos["chef_0"]["admissible_actions"]
    obs, rewards, terms, truncs, infos = game.step({"chef_0": "deliver soup", "chef_1": "wait"})
    assert infos["chef_0"]["invalid_action"] and "impossible" in obs["chef_0"] and "hold" in obs["chef_0"]
    assert game.tick == 1 and not any(terms.values())


def test_skill_runs_over_several_ticks_until_done():
    game = OvercookedGame(layout="cramped_room")
    game.reset(seed=0)
    obs, rewards, terms, truncs, infos = game.step({"chef_0": "pick up onion", "chef_1": "pick up dish"})
    held = [p.held_object.name if p.held_object else None for p in game.state.players]
    assert game.tick > 1 and ("onion" in held or "dish" in held)
    done = [a for a in game.possible_agents if infos[a]["acting"]]
    assert done and all("admissible_actions" in infos[a] for a in done)
    assert any(f"'{s}' is done" in obs[a] for a in done for s in ("pick up onion", "pick up dish"))


def test_proagent_skill_names_are_understood():
    game = OvercookedGame(layout="cramped_room")
    game.reset(seed=0)
    _, _, _, _, infos = game.step({"chef_0": "pickup(onion)", "chef_1": "wait"})
    assert not infos["chef_0"]["invalid_action"]


def test_old_dynamics_cook_full_pots_without_start_cooking():
    new, old = OvercookedGame(horizon=200), OvercookedGame(horizon=200, old_dynamics=True)
    play_bots(new), play_bots(old)
    assert old.soups > 0 and new.soups > 0
    old.reset(seed=0)
    assert "start cooking" not in {s for i in range(2) for s in old.admissible(i)} | set(old.planner.admissible(old.state, 0))


def test_shaping_is_off_by_default_and_adds_the_engine_shaped_reward():
    totals = {}
    for shaping in (0.0, 1.0):
        game = OvercookedGame(horizon=60, reward_shaping=shaping)
        obs, infos = game.reset(seed=0)
        total = 0.0
        while game.agents:
            obs, rewards, *_, infos = game.step({a: game.bot_action(a) for a in game.agents if infos[a]["acting"]})
            total += rewards["chef_0"]
        totals[shaping] = (total, game.score)
    assert totals[0.0][0] == totals[0.0][1]            # sparse only: the engine's delivery reward
    assert totals[1.0][0] > totals[1.0][1]             # onion-in-pot 3, dish pickup 3, soup pickup 5


def test_both_text_styles_describe_the_same_state():
    grid = OvercookedGame(obs_style="grid")
    objs = OvercookedGame(obs_style="objects")
    g_obs, _ = grid.reset(seed=0)
    o_obs, _ = objs.reset(seed=0)
    assert "[Current Env state]:" in g_obs["chef_0"] and "Cook station local (0, 2)" in g_obs["chef_0"]
    assert "XXPXX" in grid.instruction(0) and "[Character meaning]" in grid.instruction(0)
    assert "[Character meaning]" not in objs.instruction(0)
    assert "<You> (chef_0) hold nothing" in o_obs["chef_0"] and "<Pot 0> empty" in o_obs["chef_0"]
    assert "Distances from you" in o_obs["chef_1"]


def test_seat_env_with_bot_partner_and_expert_reaches_target():
    env = agentgym.make("Overcooked-CrampedRoom-v0", seat="chef_1", horizon=120)
    obs, info = env.reset(seed=3)
    assert info["seat"] == "chef_1" and "chef_1" in info["instruction"]
    total, done = 0.0, False
    while not done:
        obs, reward, terminated, truncated, info = env.step(env.unwrapped.expert_action())
        total += reward
        done = terminated or truncated
    assert info["success"] and total >= 20 * env.unwrapped.game.target


def test_self_play_gives_each_chef_its_own_trajectory():
    from agentgym.policies import make_policy
    from agentgym.pool import make_pool
    from agentgym.rollout import EpisodeSpec, collect
    pool = make_pool("Overcooked-CrampedRoom-v0", 1, backend="local", env_kwargs={"seat": "all", "horizon": 60},
                     with_expert=True)
    try:
        trajs, _ = collect(pool, make_policy("expert"), [EpisodeSpec(seed=0)])
    finally:
        pool.close()
    seats = split_seats(trajs[0])
    assert sorted(t.info["seat"] for t in seats) == ["chef_0", "chef_1"]
    assert all(t.turns for t in seats)
    assert all(t.success for t in seats)      # the expert pair reaches the target in 60 ticks
    assert sum(turn.reward for turn in seats[0].turns) == sum(turn.reward for turn in seats[1].turns) >= 20


def test_central_planner_joint_actions():
    env = OvercookedCentralEnv(layout="cramped_room", horizon=80)
    obs, info = env.reset(seed=0)
    joint = info["admissible_actions"]
    assert "chef_0: pick up onion; chef_1: pick up onion" in joint
    obs, r, term, trunc, info = env.step("chef_0: pick up onion; chef_1: fly")
    assert info["invalid_action"] and env.game.tick >= 1
    obs, r, term, trunc, info = env.step("nonsense")
    assert info["invalid_action"]
    total = 0.0
    while not term:
        obs, r, term, trunc, info = env.step(env.expert_action())
        total += r
    assert total >= 20 and "success" in info


def test_planner_cache_is_outside_site_packages(tmp_path, monkeypatch):
    from agentgym.envs.overcooked import skills
    monkeypatch.setattr(skills, "CACHE_DIR", tmp_path)
    mdp = OvercookedGridworld.from_layout_name("cramped_room")
    first = skills.motion_planner(mdp)
    files = list(tmp_path.glob("cramped_room_*_mp.pkl"))
    assert len(files) == 1
    again = skills.motion_planner(mdp)
    assert again.all_plans.keys() == first.all_plans.keys()


def test_unknown_layout_and_bad_options_say_what_to_do():
    with pytest.raises(ValueError, match="layout"):
        OvercookedGame(layout="no_such_kitchen")
    with pytest.raises(ValueError, match="action_level"):
        OvercookedGame(action_level="macro")


def test_human_human_2020_sample_replays_to_the_logged_scores():
    """Real 2020 human-human play (overcooked_ai's dummy_2020_hh_trials) replays through 1.1.0's engine.

    The 2020 data was recorded with the "new" dynamics that 1.1.0 implements (a chef starts cooking
    by interacting with a filled pot; recipe values/times from the layout file, e.g. counter_circuit's
    tomato recipes), so every state and reward must match. The 2019 data and ProAgent used the old
    dynamics (pots cook when full: ``old_dynamics=True`` here), which this engine does not replay.
    """
    if not HUMAN.exists():
        pytest.skip(f"human data sample not found at {HUMAN} (see /work/shared/data/README.md)")
    import pandas as pd
    from agentgym.envs.overcooked.compat import Recipe
    data = pd.read_csv(HUMAN)
    trials = list(data.groupby("trial_id", sort=False))
    assert len(trials) == 3
    for trial_id, rows in trials:
        layout = rows.layout_name.iloc[0]
        mdp = OvercookedGridworld.from_layout_name(layout)
        Recipe.configure(mdp.recipe_config)
        assert [list(r) for r in json.loads(rows.layout.iloc[0])] == [list(r) for r in mdp.terrain_mtx]
        state = OvercookedState.from_dict(json.loads(rows.state.iloc[0]))
        score = 0
        for logged_state, joint, reward in zip(rows.state, rows.joint_action, rows.reward):
            assert OvercookedState.from_dict(json.loads(logged_state)) == state, f"{layout}: state diverged"
            joint = tuple(tuple(a) if isinstance(a, list) else a for a in json.loads(joint))
            state, info = mdp.get_state_transition(state, joint)
            assert sum(info["sparse_reward_by_agent"]) == reward
            score += reward
        assert score == rows.score.max() > 0, f"{layout}: replayed {score}, logged {rows.score.max()}"


def test_a_soup_that_matches_no_order_is_delivered_but_does_not_count():
    # 1.1.0 lets a chef start cooking a 1-onion pot; the engine delivers that soup for 0 points, and it
    # must not count toward the target (it once did, through the engine's soup_delivery event)
    game = OvercookedGame(layout="cramped_room", horizon=200)
    _, infos = game.reset(seed=0)
    for skill in ["pick up onion", "put onion in pot", "start cooking", "pick up dish", "fill dish with soup",
                  "deliver soup"]:
        while not infos["chef_0"]["acting"]:
            _, _, _, _, infos = game.step({"chef_1": "wait"})
        assert skill in infos["chef_0"]["admissible_actions"]
        actions = {"chef_0": skill, **({"chef_1": "wait"} if infos["chef_1"]["acting"] else {})}
        _, rewards, _, _, infos = game.step(actions)
        assert rewards["chef_0"] == 0.0
    while not infos["chef_0"]["acting"]:
        _, _, _, _, infos = game.step({"chef_1": "wait"})
    assert game.state.players[0].held_object is None        # the 1-onion soup left through the serving counter
    assert game.soups == 0 and game.score == 0
