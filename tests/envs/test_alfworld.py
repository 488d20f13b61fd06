"""ALFWorld family: ALFWorld's own TextWorld engine behind the text contract, the embedded
generated games, the real valid_seen games (skipped where the shared data is absent) and the
generator."""

import json
import shutil
import warnings
from pathlib import Path

import pytest

import agentgym
from agentgym.core import has_capability
from agentgym.envs.alfworld import data as alf_data
from agentgym.envs.alfworld import games
from agentgym.envs.alfworld import generate as gen
from agentgym.envs.alfworld.env import parse_action

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "alfworld"
VALID_SEEN = SHARED / "json_2.1.1" / "valid_seen"
needs_data = pytest.mark.skipif(not VALID_SEEN.is_dir(), reason=f"ALFWorld valid_seen games not found at {SHARED}")


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path_factory):
    """No ALFWORLD_DATA unless a test sets it; built games go to a per-session cache."""
    monkeypatch.delenv("ALFWORLD_DATA", raising=False)
    monkeypatch.setattr(games, "CACHE", tmp_path_factory.getbasetemp() / "alfworld_cache")


def run_expert(env, seed, max_steps=50):
    obs, info = env.reset(seed=seed)
    steps, done = 0, False
    while not done and steps < max_steps:
        action = env.unwrapped.expert_action()
        obs, reward, term, trunc, info = env.step(action)
        done, steps = term or trunc, steps + 1
    return info, reward, steps


def test_default_is_offline_generated_games():
    assert agentgym.resolve_id("alfworld") == "ALFWorld-v0"
    env = agentgym.make("ALFWorld-v0")
    rows = games.embedded_problems()
    assert len(env.unwrapped.games) == len(rows) >= 10
    assert {r["task_type"] for r in rows} == set(gen.TASK_TYPES.values())   # pick-two included
    assert sum(f.stat().st_size for f in gen.RESOURCES.iterdir()) < 2_000_000
    obs, info = env.reset(seed=0)
    assert obs.startswith("You are in the middle of a room.") and "-= Welcome" not in obs
    assert f"Your task is to: {info['instruction']}" in obs
    assert info["task_type"] == rows[env.unwrapped.game_index(0)]["task_type"] and info["invalid_action"] is False
    assert info["success"] is False and info["admissible_actions"] == sorted(info["admissible_actions"])
    assert any(a.startswith("go to ") for a in info["admissible_actions"])
    assert has_capability(env, "expert_action")
    env.close()


def test_think_and_invalid_commands():
    env = agentgym.make("ALFWorld-v0")
    obs, info = env.reset(seed=1)
    before = info["admissible_actions"]
    obs, reward, term, trunc, info = env.step("think: the spoon is probably in a drawer")
    assert obs == "OK." and info["invalid_action"] is False and info["admissible_actions"] == before
    for bad in ["fly to the moon", "", "go to", "\x00\x01", "x" * 5000, "go to nowhere 99"]:
        obs, reward, term, trunc, info = env.step(bad)
        assert obs == "Nothing happens." and info["invalid_action"] is True and reward == 0.0 and not term
    # a valid command in ReAct clothing still works
    target = next(a for a in before if a.startswith("go to "))
    obs, reward, term, trunc, info = env.step(f"> {target.upper()}\nmore text")
    assert info["invalid_action"] is False and obs != "Nothing happens."
    assert info["admissible_actions"] != before
    env.close()


def test_reset_reuses_the_pddl_translation():
    """Re-playing a game reuses Fast Downward's memoized PDDL->SAS translation (no new translation)
    and gives the same observation as the first play; sys.argv survives the translator."""
    import sys
    import fast_downward
    argv = list(sys.argv)
    env = agentgym.make("ALFWorld-v0")
    first, _ = env.reset(seed=2)
    env.step(env.unwrapped.expert_action())
    before = fast_downward.pddl2sas.cache_info()
    again, _ = env.reset(seed=2)
    after = fast_downward.pddl2sas.cache_info()
    assert again == first and after.misses == before.misses and after.hits >= before.hits + 2
    assert sys.argv == argv
    env.close()


def test_parse_task_types_takes_an_int_a_string_or_a_list():
    assert games.parse_task_types(1) == ["pick_and_place_simple"]
    assert games.parse_task_types("1,look_at_obj_in_light") == ["pick_and_place_simple", "look_at_obj_in_light"]
    assert games.parse_task_types([1, 2]) == [gen.TASK_TYPES[1], gen.TASK_TYPES[2]]
    assert games.parse_task_types("all") is None
    with pytest.raises(ValueError, match="unknown ALFWorld task type"):
        games.parse_task_types(7)


def test_parse_action():
    assert parse_action("Action: go to desk 1") == "go to desk 1"
    assert parse_action("  >  take  Mug 1 from  desk 1 ") == "take mug 1 from desk 1"
    assert parse_action("think: hmm") == "think: hmm"
    assert parse_action(None) is None and parse_action("   \n ") is None and parse_action("a" * 600) is None


@pytest.mark.parametrize("task_type,seed", [
    ("look_at_obj_in_light", 1), ("pick_clean_then_place_in_recep", 0),
    *[pytest.param(t, 2, marks=pytest.mark.slow) for t in ("pick_and_place_simple", "pick_heat_then_place_in_recep",
                                                           "pick_cool_then_place_in_recep", "pick_two_obj_and_place")]])
def test_expert_solves_generated_games(task_type, seed):
    """The embedded set keeps only games ALFWorld's handcoded expert wins within 50 steps."""
    env = agentgym.make("ALFWorld-v0", task_types=[task_type])
    info, reward, steps = run_expert(env, seed=seed)
    assert info["task_type"] == task_type
    assert info["success"] is True and reward == 1.0 and steps < 50
    env.close()


def test_seed_picks_the_game_deterministically():
    env = agentgym.make("ALFWorld-v0")
    n = len(env.unwrapped.games)
    assert sorted(env.unwrapped.game_index(s) for s in range(n)) == list(range(n))   # every game once
    assert [env.unwrapped.game_index(s) for s in range(n)] != list(range(n))          # not folder order
    a = [env.reset(seed=s)[1]["gamefile"] for s in (3, 4, 3)]
    assert a[0] == a[2] and a[0] != a[1]
    first = run_expert(env, 5)
    again = run_expert(env, 5)
    assert first[2] == again[2] and first[0]["gamefile"] == again[0]["gamefile"]
    env.close()


def test_generated_games_never_use_valid_unseen_scenes(tmp_path):
    rows = games.embedded_problems()
    assert not {gen.scene_num(r["scene_key"]) for r in rows} & gen.VALID_UNSEEN_SCENES
    assert not {gen.scene_num(k) for k in gen.load_scenes()} & gen.VALID_UNSEEN_SCENES
    # a scene folder with a valid_unseen trial: it is dropped before any problem is drawn
    scene = next(iter(gen.load_scenes().values()))
    for num, trial in ((219, "trial_a"), (7, "trial_b")):
        d = tmp_path / f"pick_and_place_simple-X-None-Y-{num}" / trial
        d.mkdir(parents=True)
        (d / "initial_state.pddl").write_text(scene + "(:goal (and))\n)")
        (d / "traj_data.json").write_text(json.dumps({"scene": {"scene_num": num}, "task_id": trial}))
    scenes = gen.load_scenes(tmp_path)
    assert list(scenes) == ["7/trial_b"]
    problems = gen.sample_problems(scenes, 30, seed=1)
    assert problems and all(gen.scene_num(p.scene_key) not in gen.VALID_UNSEEN_SCENES for p in problems)


def test_sampled_problems_cover_all_task_types_and_are_reproducible():
    scenes = gen.load_scenes()
    a = gen.sample_problems(scenes, 24, seed=3)
    assert a == gen.sample_problems(scenes, 24, seed=3) and a != gen.sample_problems(scenes, 24, seed=4)
    assert {p.task_type for p in a} == set(gen.TASK_TYPES.values())
    game = gen.game_data(a[0], scenes[a[0].scene_key])
    assert "(:goal" in game["pddl_problem"] and f"{a[0].object_target}Type" in game["pddl_problem"]
    assert "UNKNOWN GOAL" not in game["grammar"]


def test_missing_data_message(tmp_path):
    with pytest.raises(FileNotFoundError, match="alfworld-download.*--generate"):
        agentgym.make("ALFWorld-v0", split="eval_in_distribution")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        agentgym.make("ALFWorld-v0", split="eval_in_distribution", data_dir=str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="task type"):
        agentgym.make("ALFWorld-v0", task_types=[9])


@needs_data
def test_valid_seen_matches_alfworlds_own_expert_log(monkeypatch):
    """Observations and admissible commands equal those ALFWorld 0.4.2 recorded on the same games."""
    monkeypatch.setenv("ALFWORLD_DATA", str(SHARED))
    env = agentgym.make("ALFWorld-v0", split="eval_in_distribution")
    files = env.unwrapped.games
    assert len(files) == 140
    assert {games_task(f) for f in files} == set(gen.TASK_TYPES.values())
    log = {json.loads(line)["game"]: json.loads(line) for line in (SHARED / "expert" / "valid_seen_expert.jsonl").open()}
    checked = 0
    for seed in range(len(files)):
        path = files[env.unwrapped.game_index(seed)]
        rec = log.get(str(Path(path).parent.relative_to(SHARED)))
        if rec is None or not rec["won"] or len(rec["steps"]) > 12:
            continue
        obs, info = env.reset(seed=seed)
        assert obs == rec["initial_observation"].split("\n\n", 1)[1]
        for step in rec["steps"]:
            assert info["admissible_actions"] == step["admissible_commands"]
            obs, reward, term, trunc, info = env.step(step["action"])
            assert obs == step["observation"]
        assert term and info["success"] is True
        checked += 1
        if checked == 2:
            break
    assert checked == 2
    env.close()


def games_task(path: str) -> str:
    return Path(path).parent.parent.name.split("-")[0]


@needs_data
def test_corrupt_game_is_skipped_with_a_warning(tmp_path):
    split = tmp_path / "json_2.1.1" / "valid_seen"
    good = sorted(VALID_SEEN.glob("look_at_obj_in_light-*/*"))[0]
    shutil.copytree(good, split / good.parent.name / good.name)
    bad_json = split / "pick_and_place_simple-A-None-B-1" / "trial_x"
    bad_json.mkdir(parents=True)
    (bad_json / "traj_data.json").write_text("{}")
    (bad_json / "game.tw-pddl").write_text("{not json")
    bad_pddl = split / "pick_and_place_simple-A-None-B-1" / "trial_y"
    bad_pddl.mkdir(parents=True)
    (bad_pddl / "traj_data.json").write_text("{}")
    (bad_pddl / "game.tw-pddl").write_text(json.dumps({"solvable": True, "pddl_domain": "(oops", "grammar": "",
                                                       "pddl_problem": "(oops"}))
    with pytest.warns(UserWarning, match="trial_x"):
        env = agentgym.make("ALFWorld-v0", split="eval_in_distribution", data_dir=str(tmp_path))
    assert len(env.unwrapped.games) == 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        broken = next(s for s in range(2) if "trial_y" in env.unwrapped.games[env.unwrapped.game_index(s)])
        obs, info = env.reset(seed=broken)     # the broken PDDL: skipped to the next seed's game
    assert any("trial_y" in str(w.message) for w in caught)
    assert info["task_type"] == "look_at_obj_in_light" and "Your task is to" in obs
    env.close()


def test_eval_split_falls_back_only_when_asked(tmp_path):
    """The config's eval.env_kwargs (split=eval_in_distribution, fallback_split=train) evaluates on
    training games with a warning when the data is missing; without fallback_split it is an error."""
    from agentgym.config import load_config
    from omegaconf import OmegaConf
    cfg = load_config("alfworld", "grpo")
    kwargs = {**OmegaConf.to_container(cfg.env.kwargs), **OmegaConf.to_container(cfg.eval.env_kwargs)}
    assert kwargs["split"] == "eval_in_distribution"
    with pytest.warns(UserWarning, match="(?s)'eval_in_distribution' is unavailable.*alfworld-download"):
        env = agentgym.make("ALFWorld-v0", **kwargs)
    assert env.unwrapped.split == "train" and env.unwrapped.games == games.embedded_problems()
    obs, info = env.reset(seed=0)
    assert info["split"] == "train" and "Your task is to" in obs
    env.close()
    with pytest.raises(FileNotFoundError, match="alfworld-download"):
        agentgym.make("ALFWorld-v0", **{**kwargs, "fallback_split": None})


@needs_data
def test_eval_env_kwargs_play_valid_seen(monkeypatch):
    """With the data present, the same eval kwargs play the real valid_seen games and do not warn."""
    monkeypatch.setenv("ALFWORLD_DATA", str(SHARED))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = agentgym.make("ALFWorld-v0", split="eval_in_distribution", fallback_split="train")
    obs, info = env.reset(seed=3)
    assert info["split"] == "eval_in_distribution" and info["gamefile"] == env.unwrapped.games[env.unwrapped.game_index(3)]
    assert "valid_seen" in info["gamefile"]
    env.close()


def test_expert_trajectories_for_bc(tmp_path):
    from agentgym.trajectory import load_jsonl
    out = tmp_path / "expert.jsonl"
    metrics = alf_data.expert_trajectories(3, out, seed=0, num_envs=1)
    trajs = load_jsonl(out)
    assert metrics["episodes"] == 3 and len(trajs) >= 2
    for t in trajs:
        assert t.success and t.turns and all(turn.action for turn in t.turns)
        assert all(turn.action in turn.info["admissible_actions"] for turn in t.turns)


def test_expert_knows_only_types_in_its_prior_table():
    scene = next(iter(gen.load_scenes()))
    assert alf_data.expert_knows(gen.Problem(scene, "pick_and_place_simple", "Apple", "CounterTop"))
    assert not alf_data.expert_knows(gen.Problem(scene, "pick_and_place_simple", "TeddyBear", "Bed"))


def test_data_cli_check(capsys, monkeypatch):
    assert alf_data.main(["--check"]) == 0
    assert "none" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        alf_data.main(["--generate", "2"])     # --out is required


@pytest.mark.slow
def test_generator_writes_a_solvable_game_the_env_plays(tmp_path):
    kept = alf_data.generate(1, tmp_path, seed=11, task_types=["pick_and_place_simple"], timeout_s=60, log=lambda s: None)
    assert len(kept) == 1
    problem, walkthrough = kept[0]
    env = agentgym.make("ALFWorld-v0", data_dir=str(tmp_path))
    assert len(env.unwrapped.games) == 1 and problem.name in env.unwrapped.games[0]
    obs, info = env.reset(seed=0)
    for action in walkthrough:
        obs, reward, term, trunc, info = env.step(action)
    assert term and info["success"] is True
    env.close()
