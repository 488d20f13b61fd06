"""Suites and the runner on the host: manifests and their hash, per-episode records, resume, refusals."""

import json
import shutil

import pytest

import agentgym.testing  # noqa: F401  (registers the AgentgymTest-* toy envs)
from agentgym.cli import main
from agentgym.leaderboard.errors import LeaderboardError
from agentgym.leaderboard.runner import (RECORD_FIELDS, ResultsFolder, Submission, check_model_folder, read_records,
                                         resolve_submission, run_suite, verify)
from agentgym.leaderboard.suite import available_suites, load_suite, parse_suite

TOY = {"suite": "toy", "version": 1, "mode": "choose", "episode_timeout_s": 60,
       "envs": [{"name": "guess", "id": "AgentgymTest-Guess-v0", "max_turns": 6, "history_turns": 1,
                 "seeds": {"start": 10, "count": 6}},
                {"name": "guess-big", "id": "AgentgymTest-Guess-v0", "kwargs": {"n": 16}, "max_turns": 8,
                 "history_turns": 0, "seeds": [3, 5, 7]},
                {"name": "needs-data", "id": "AgentgymTest-Guess-v0", "max_turns": 4, "seeds": [1],
                 "requires_env": "AGENTGYM_TEST_NO_SUCH_VARIABLE"}]}


def toy_suite(**changes):
    return parse_suite({**TOY, **changes})


def without_timing(records):
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in records]


def test_shipped_suites_load_with_distinct_hashes_and_every_env_registered():
    from agentgym.registry import resolve_id

    assert {"core@1", "full@1"} <= set(available_suites())
    core, full = load_suite("core@1"), load_suite("full@1")
    assert core.label == "core@1" and core.hash != full.hash and core.hash.startswith("sha256:")
    for suite in (core, full):
        assert {e.env_id for e in suite.entries} == {resolve_id(e.env_id) for e in suite.entries}
        families = {e.env_id.split("-")[0] for e in suite.entries}
        assert families == {"ALFWorld", "WebShop", "MiniHack", "Werewolf", "Overcooked"}


def test_the_hash_covers_every_setting():
    base = toy_suite()
    assert toy_suite().hash == base.hash
    assert toy_suite(episode_timeout_s=61).hash != base.hash
    changed = json.loads(json.dumps(TOY))
    changed["envs"][0]["seeds"]["count"] = 7
    assert parse_suite(changed).hash != base.hash and len(parse_suite(changed).entries[0].seeds) == 7


@pytest.mark.parametrize("manifest, message", [
    ({**TOY, "colour": "red"}, "unknown keys"),
    ({**TOY, "envs": [{**TOY["envs"][0], "seed": 1}]}, "unknown keys"),
    ({**TOY, "envs": [{**TOY["envs"][0], "seeds": [1, 1]}]}, "distinct seeds"),
    ({**TOY, "envs": [TOY["envs"][0], TOY["envs"][0]]}, "unique"),
    ({**TOY, "mode": "chat"}, "mode"),
])
def test_bad_manifests_are_refused_in_one_sentence(manifest, message):
    with pytest.raises(LeaderboardError, match=message):
        parse_suite(manifest)


def test_an_unknown_suite_names_the_known_ones(capsys):
    with pytest.raises(LeaderboardError, match="core@1"):
        load_suite("core@99")
    assert main(["leaderboard", "run", "--suite", "core@99", "--policy", "random", "--no-docker"]) == 2
    assert "Unknown suite 'core@99'" in capsys.readouterr().err


def test_an_entry_runs_only_where_its_data_folder_exists(tmp_path, monkeypatch):
    entry = toy_suite().entry("needs-data")
    assert "it is skipped" in entry.missing()
    monkeypatch.setenv("AGENTGYM_TEST_NO_SUCH_VARIABLE", str(tmp_path / "games"))   # set, but no such folder
    assert "it is skipped" in entry.missing()
    (tmp_path / "games").mkdir()
    assert "it is skipped" in entry.missing()                                         # an empty folder
    (tmp_path / "games" / "game.tw-pddl").write_text("{}")
    assert entry.missing() is None


def test_a_run_writes_one_valid_line_per_episode_and_a_summary(tmp_path):
    suite = toy_suite()
    summary = run_suite(suite, Submission("rnd", "random"), tmp_path, progress=False)
    folder = tmp_path / "rnd"
    records = read_records(folder / "episodes.jsonl", suite, "rnd")   # the host's own checks pass
    assert sorted(r["seed"] for r in records if r["env"] == "guess") == list(range(10, 16))   # in finishing order
    assert sorted(r["seed"] for r in records if r["env"] == "guess-big") == [3, 5, 7]
    assert all(set(r) == set(RECORD_FIELDS) and r["status"] == "ok" and r["suite_hash"] == suite.hash for r in records)
    assert len({r["config_hash"] for r in records}) == 2          # one per entry: their settings differ
    assert list(summary["skipped"]) == ["needs-data"] and "AGENTGYM_TEST_NO_SUCH_VARIABLE" in summary["skipped"]["needs-data"]
    wins = sum(r["success"] for r in records if r["env"] == "guess")
    assert summary["envs"]["guess"]["success"]["rate"] == wins / 6 and summary["envs"]["guess"]["n"] == 6
    meta = json.loads((folder / "submission.json").read_text())
    assert meta["finished"] and meta["suite_hash"] == suite.hash and not meta["docker"]
    trajectories = [json.loads(line) for line in (folder / "trajectories.jsonl").read_text().splitlines()]
    assert len(trajectories) == 4 and all(t["turns"][0]["action"] for t in trajectories)   # 2 per env


def test_resume_runs_only_the_missing_episodes_and_gives_the_same_records(tmp_path):
    suite = toy_suite()
    run_suite(suite, Submission("rnd", "random"), tmp_path / "full", progress=False)
    full = read_records(tmp_path / "full" / "rnd" / "episodes.jsonl", suite)
    # an interrupted run: 4 episodes written, then killed
    shutil.copytree(tmp_path / "full" / "rnd", tmp_path / "cut" / "rnd")
    episodes = tmp_path / "cut" / "rnd" / "episodes.jsonl"
    episodes.write_text("".join(episodes.read_text().splitlines(keepends=True)[:4]))
    with pytest.raises(LeaderboardError, match="--resume"):
        run_suite(suite, Submission("rnd", "random"), tmp_path / "cut", progress=False)
    run_suite(suite, Submission("rnd", "random"), tmp_path / "cut", resume=True, progress=False)
    resumed = read_records(episodes, suite)
    assert len(resumed) == len(full) == 9
    key = lambda r: (r["env"], r["seed"])  # noqa: E731
    assert sorted(without_timing(resumed), key=key) == sorted(without_timing(full), key=key)


def test_a_folder_of_another_suite_version_is_refused_and_left_as_it_was(tmp_path):
    run_suite(toy_suite(), Submission("rnd", "random"), tmp_path, progress=False)
    before = {p.name: p.read_bytes() for p in (tmp_path / "rnd").iterdir()}
    with pytest.raises(LeaderboardError, match="another --out"):
        run_suite(toy_suite(version=2), Submission("rnd", "random"), tmp_path, resume=True, progress=False)
    with pytest.raises(LeaderboardError, match="another policy or model"):
        run_suite(toy_suite(), Submission("rnd", "expert"), tmp_path, resume=True, progress=False)
    assert {p.name: p.read_bytes() for p in (tmp_path / "rnd").iterdir()} == before


@pytest.mark.parametrize("change, message", [
    (lambda r: r.update(seed=999), "not one of guess's episodes"),
    (lambda r: r.update(success="yes"), "wrong type"),
    (lambda r: r.update(suite_hash="sha256:0"), "another suite"),
    (lambda r: r.pop("turns"), "missing field 'turns'"),
    (lambda r: r.update(status="great"), "status"),
])
def test_tampered_lines_are_refused_with_their_line_number(tmp_path, change, message):
    suite = toy_suite()
    run_suite(suite, Submission("rnd", "random"), tmp_path, progress=False)
    path = tmp_path / "rnd" / "episodes.jsonl"
    lines = path.read_text().splitlines()
    record = json.loads(lines[1])
    change(record)
    lines[1] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(LeaderboardError, match=f"line 2: .*{message}"):
        read_records(path, suite)


def test_a_broken_episode_counts_as_a_failure(tmp_path):
    suite = toy_suite(envs=[{"name": "faulty", "id": "AgentgymTest-Faulty-v0", "max_turns": 6,
                             "kwargs": {"fault": "raise", "at_step": 1}, "score": "never", "seeds": [1, 2]}])
    summary = run_suite(suite, Submission("rnd", "random"), tmp_path, progress=False)
    records = read_records(tmp_path / "rnd" / "episodes.jsonl", suite)
    assert [r["status"] for r in records] == ["error", "error"] and "injected error" in records[0]["error"]
    assert all(r["score"] == 0.0 and not r["success"] for r in records)
    assert summary["envs"]["faulty"]["errors"] == 2 and summary["envs"]["faulty"]["success"]["rate"] == 0.0


def test_model_folders_are_checked_before_anything_runs(tmp_path, tiny_folder):
    with pytest.raises(LeaderboardError, match="does not exist"):
        resolve_submission(str(tmp_path / "nope"))
    (tmp_path / "vit").mkdir()
    (tmp_path / "vit" / "config.json").write_text(json.dumps({"model_type": "vit"}))
    with pytest.raises(LeaderboardError, match="not a causal language model"):
        check_model_folder(tmp_path / "vit")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LeaderboardError, match="no config.json"):
        check_model_folder(tmp_path / "empty")
    sub = resolve_submission(str(tiny_folder), name="tiny")
    assert sub.policy == "hf" and sub.model_hash.startswith("sha256:") and sub.name == "tiny"
    assert resolve_submission(str(tiny_folder)).model_hash == sub.model_hash     # the hash is the content's
    assert resolve_submission("openai:m@http://127.0.0.1:1/v1").spec == "openai:m@http://127.0.0.1:1/v1"
    with pytest.raises(LeaderboardError, match="openai:MODEL@BASE_URL"):
        resolve_submission("openai:m")


def test_the_default_model_plays_a_suite_on_the_host(tmp_path, tiny_folder):
    suite = toy_suite(envs=TOY["envs"][:1])
    summary = run_suite(suite, resolve_submission(str(tiny_folder), name="tiny"), tmp_path, progress=False)
    records = read_records(tmp_path / "tiny" / "episodes.jsonl", suite)
    assert len(records) == 6 and all(r["tokens"] > 0 and r["model_hash"] for r in records)
    assert summary["manifest"]["model_hash"] == records[0]["model_hash"]
    assert ResultsFolder(tmp_path, suite, resolve_submission(str(tiny_folder), name="tiny"), resume=True).records


def test_verify_marks_a_submission_whose_rerun_plays_the_same_episodes(tmp_path, monkeypatch):
    import agentgym.leaderboard.suite as suite_module

    suite = toy_suite()
    monkeypatch.setattr(suite_module, "load_suite", lambda label: suite)   # the toy suite is not a shipped file
    for where in ("submitted", "rerun", "other"):
        run_suite(suite, Submission("rnd", "random" if where != "other" else "expert"), tmp_path / where,
                  progress=False)
    with pytest.raises(LeaderboardError, match="another policy"):
        verify(tmp_path / "submitted" / "rnd", tmp_path / "other" / "rnd")
    episodes = tmp_path / "rerun" / "rnd" / "episodes.jsonl"
    lines = episodes.read_text().splitlines()
    forged = json.loads(lines[0])
    forged["success"] = not forged["success"]
    episodes.write_text("\n".join([json.dumps(forged)] + lines[1:]) + "\n")
    result = verify(tmp_path / "submitted" / "rnd", tmp_path / "rerun" / "rnd")
    assert result["matched"] == result["episodes"] - 1 and len(result["differ"]) == 1
    assert "verified" not in json.loads((tmp_path / "submitted" / "rnd" / "submission.json").read_text())
    episodes.write_text("\n".join(lines) + "\n")
    assert verify(tmp_path / "submitted" / "rnd", tmp_path / "rerun" / "rnd")["differ"] == []
    meta = json.loads((tmp_path / "submitted" / "rnd" / "submission.json").read_text())
    assert meta["verified"]["episodes"] == 9


def test_the_committed_board_matches_the_shipped_suite():
    """A published suite is frozen: editing core@1 without a new version would orphan these results."""
    from pathlib import Path

    board = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "leaderboard" / "core@1"
    suite = load_suite("core@1")
    folders = sorted(p for p in board.iterdir() if p.is_dir())
    assert {p.name for p in folders} >= {"random", "expert", "agentgym-tiny", "smollm2-135m"}
    for folder in folders:
        records = read_records(folder / "episodes.jsonl", suite, folder.name)
        assert len(records) == sum(len(e.seeds) for e in suite.entries)       # every entry ran, ALFWorld included
