"""The fault drill, longer than the test suite's: env actors SIGKILLed at random moments (some while
the pool restarts them) through a training run and an evaluation; do their numbers equal an
undisturbed run's?

    python benchmarks/fault_drill.py [--kills 50] [--iterations 30] [--eval-kills 20] [--eval-episodes 400]

The run is agentgym.testing.drill_config (GRPO on the toy guessing game with 50 ms env steps, 8 envs
on 2 Ray actors); the killer is agentgym.testing.ActorKiller. Metrics are compared without wall times
and fault counters; floats may drift (``metric_drift``, matched below 1e-4: a re-run episode shares
the policy's batched forward pass with other episodes, which moves log-probs by ~1e-7, and the
updates carry that on). Writes benchmarks/results/fault_drill.json.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from agentgym.evaluate import evaluate  # noqa: E402
from agentgym.policies import make_policy  # noqa: E402
from agentgym.pool import init_ray  # noqa: E402
from agentgym.testing import (ActorKiller, drill_config, metric_drift, played, same_metrics,  # noqa: E402
                              saved_episodes, under_fire)
from agentgym.trainers.loop import Trainer  # noqa: E402
from common import write_result  # noqa: E402


def run_training(cfg) -> tuple[list[dict], dict]:
    """The metrics rows and the training pool's own counters (restarts, start retries)."""
    trainer = Trainer(cfg)
    try:
        trainer.setup()
        rows = trainer.train()
        return rows, dict(trainer.pool.metrics)
    finally:
        trainer.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=50, help="kills to land during training")
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--eval-kills", type=int, default=20)
    parser.add_argument("--eval-episodes", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0, help="the killer's seed")
    args = parser.parse_args()
    init_ray()
    out = tempfile.mkdtemp(prefix="fault_drill_")

    t0 = time.perf_counter()
    clean_rows, _ = run_training(drill_config(out, "clean", args.iterations))
    clean_s = time.perf_counter() - t0
    killer = ActorKiller(args.kills, seed=args.seed)
    (fired_rows, pool_metrics), fired_s = under_fire(
        lambda: run_training(drill_config(out, "fired", args.iterations)), killer)
    training = {
        "iterations": args.iterations, "kills_attempted": killer.stats["attempted"],
        "kills_landed": killer.stats["landed"], "kills_during_restart": killer.stats["during_restart"],
        "restarts": pool_metrics["restarts"], "start_retries": pool_metrics.get("start_retries", 0),
        "dropped_episodes": sum(r.get("rollout/dropped_episodes", 0) + r.get("eval/dropped_episodes", 0)
                                for r in fired_rows),
        "metrics_match": same_metrics(fired_rows, clean_rows),
        "metrics_max_drift": metric_drift(fired_rows, clean_rows),
        "trajectories_match": saved_episodes(Path(out, "fired")) == saved_episodes(Path(out, "clean")),
        "wall_s_undisturbed": round(clean_s, 1), "wall_s_under_fire": round(fired_s, 1)}

    cfg = drill_config(out, "eval")
    t0 = time.perf_counter()
    clean, clean_trajs = evaluate(make_policy("random"), cfg, episodes=args.eval_episodes)
    clean_s = time.perf_counter() - t0
    killer = ActorKiller(args.eval_kills, seed=args.seed + 1)
    (fired, fired_trajs), fired_s = under_fire(
        lambda: evaluate(make_policy("random"), cfg, episodes=args.eval_episodes), killer)
    evaluation = {
        "episodes": args.eval_episodes, "kills_attempted": killer.stats["attempted"],
        "kills_landed": killer.stats["landed"], "kills_during_restart": killer.stats["during_restart"],
        "dropped_episodes": fired["dropped_episodes"],
        "metrics_match": {**fired, "dropped_episodes": 0} == {**clean, "dropped_episodes": 0},
        "trajectories_match": played(fired_trajs) == played(clean_trajs),
        "wall_s_undisturbed": round(clean_s, 1), "wall_s_under_fire": round(fired_s, 1)}

    for name, r in (("training", training), ("evaluation", evaluation)):
        print(f"{name}: {r['kills_landed']} kills landed ({r['kills_during_restart']} during a restart), "
              f"{r['dropped_episodes']} episodes dropped and re-run, metrics match: {r['metrics_match']}, "
              f"{r['wall_s_undisturbed']} s undisturbed vs {r['wall_s_under_fire']} s under fire")
    write_result("fault_drill", {"config": "agentgym.testing.drill_config", "killer": {
        "interval_s": list(killer.interval), "restart_kill_p": killer.restart_kill_p, "seed": args.seed},
        "training": training, "evaluation": evaluation})


if __name__ == "__main__":
    main()
