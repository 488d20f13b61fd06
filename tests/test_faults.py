"""Faults end to end: a SIGKILLed training run resumes from its last checkpoint, and a training
run whose env actor dies finishes with the lost episode counted and re-run."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

import agentgym.testing  # noqa: F401  (registers the faulty toy env)
from agentgym.config import load_config
from agentgym.trainers.loop import train


def read_metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_sigkilled_run_resumes_from_last_checkpoint(tmp_path):
    run_dir = tmp_path / "killed"
    args = [sys.executable, "-m", "agentgym.cli", "train", "--env", "minihack", "--algo", "grpo",
            "train.iterations=5", "train.episodes_per_iter=8", "algo.group_size=4", "rollout.pool=local",
            "rollout.num_envs=4", "eval.every=0", "eval.episodes=4", "checkpoint.every=1", "checkpoint.keep=2",
            f"output_dir={tmp_path}", "run_name=killed", "logging.progress=false", "logging.tensorboard=false"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 600
    ckpts = run_dir / "checkpoints"
    while time.time() < deadline and proc.poll() is None:
        if ckpts.exists() and any(p.name >= "iter_000002" for p in ckpts.glob("iter_*")):
            break
        time.sleep(0.2)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read()[-2000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    last = max(int(p.name.split("_")[1]) for p in ckpts.glob("iter_*"))
    assert 2 <= last < 5

    out = subprocess.run(args + ["--resume", "auto"], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"(iteration {last})" in out.stdout + out.stderr
    steps = [row["step"] for row in read_metrics(run_dir) if row["step"] > 0]
    assert steps == [1, 2, 3, 4, 5], steps           # each iteration logged once, none lost or repeated
    assert (run_dir / "checkpoints" / "iter_000005").exists()
    assert (run_dir / "learning_curve.png").exists()

    # the trained model evaluates straight from the run folder (its latest checkpoint)
    out = subprocess.run([sys.executable, "-m", "agentgym.cli", "eval", "--env", "minihack", "--checkpoint",
                          str(run_dir), "--episodes", "4", "rollout.pool=local"], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout[out.stdout.index("{"):])["episodes"] == 4


@pytest.mark.slow
def test_training_survives_env_actor_crash(tmp_path):
    """... and with rollout.recycle_after=1 its actors are also replaced between episodes (rollout/recycles)."""
    cfg = load_config(env="AgentgymTest-Faulty-v0", algo="grpo", overrides=[
        "rollout.pool=ray", "rollout.num_envs=4", "rollout.num_workers=2", "rollout.recycle_after=1",
        "train.iterations=2",
        "train.episodes_per_iter=8", "algo.group_size=4", "eval.every=0", "eval.episodes=2",
        "checkpoint.every=0", f"output_dir={tmp_path}", "run_name=crash", "logging.progress=false"])
    # the env process exits (as on a segfault) at step 2 of the first episode that gets there
    cfg.env.kwargs = {"n": 4, "fault": "exit", "at_step": 2, "marker": str(tmp_path / "crashed-once")}
    rows = train(cfg)
    assert (tmp_path / "crashed-once").exists()
    by_step = {r["step"]: r for r in rows}
    assert by_step[1]["rollout/restarts"] >= 1 and by_step[1]["rollout/dropped_episodes"] >= 1
    assert by_step[1]["rollout/episodes"] == 8 and by_step[2]["rollout/episodes"] == 8
    assert "losses/loss" in by_step[2]
    assert by_step[2]["rollout/recycles"] >= 2            # both actors, as iteration 2's collect starts


@pytest.mark.slow
def test_fault_drill_training_survives_20_actor_kills_with_unchanged_metrics(tmp_path):
    """SIGKILL env actors at random moments (some while the pool restarts them) through a training run:
    it finishes, and its metrics and trajectories are the undisturbed run's (fault counters aside)."""
    from agentgym.testing import ActorKiller, drill_config, same_metrics, saved_episodes, under_fire

    clean = train(drill_config(tmp_path, "clean", iterations=10))
    killer = ActorKiller(kills=20, seed=0)
    fired, _ = under_fire(lambda: train(drill_config(tmp_path, "fired", iterations=10)), killer)
    assert killer.stats["landed"] >= 20 and killer.stats["during_restart"] >= 1, killer.stats
    assert sum(r.get("rollout/restarts", 0) for r in fired) >= 10
    assert sum(r.get("rollout/dropped_episodes", 0) for r in fired) >= 1
    assert same_metrics(fired, clean)
    assert saved_episodes(tmp_path / "fired") == saved_episodes(tmp_path / "clean")


@pytest.mark.slow
def test_fault_drill_evaluation_survives_actor_kills_with_unchanged_results(tmp_path):
    """The same for evaluation (its own pool): the results equal an undisturbed evaluation's."""
    from agentgym.evaluate import evaluate
    from agentgym.policies import make_policy
    from agentgym.testing import ActorKiller, drill_config, under_fire

    cfg = drill_config(tmp_path, "eval")
    clean, clean_trajs = evaluate(make_policy("random"), cfg, episodes=160)
    killer = ActorKiller(kills=6, seed=1)
    (fired, fired_trajs), _ = under_fire(lambda: evaluate(make_policy("random"), cfg, episodes=160), killer)
    assert killer.stats["landed"] >= 6, killer.stats
    assert fired["dropped_episodes"] >= 1
    assert {**fired, "dropped_episodes": 0} == {**clean, "dropped_episodes": 0}
    for t in fired_trajs:
        t.info["dropped_restarts"] = 0
    assert [t.to_dict() for t in fired_trajs] == [t.to_dict() for t in clean_trajs]
