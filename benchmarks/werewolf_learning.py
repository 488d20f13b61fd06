"""A learner seat in 7-player Werewolf trained with GRPO: the default model on CPU, choose mode,
a random seat per episode, rule-based bots in the other six seats.

    python benchmarks/werewolf_learning.py [--iterations 3] [--episodes 16] [--eval-episodes 32]

Runs `agentgym train --env werewolf --algo grpo` in a subprocess and reads its metrics.jsonl:
the evaluation before training (iteration 0) and after the last iteration, on the same fixed
seeds (win rate = success rate of the learner's team). Writes
benchmarks/results/werewolf_learning.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from agentgym.config import load_config
from agentgym.evaluate import eval_specs
from agentgym.policies import make_policy
from agentgym.pool import make_pool
from agentgym.rollout import collect
from common import peak_rss_mb, write_result


def baselines(eval_episodes: int) -> dict:
    """The rule-based bot and a uniform-random chooser in the learner's seat, on the trainer's eval seeds."""
    cfg = load_config(env="werewolf")
    out = {}
    for name in ("expert", "random"):
        pool = make_pool(cfg.env.id, 4, backend="local", env_kwargs=dict(cfg.env.kwargs), with_expert=True)
        try:
            _, metrics = collect(pool, make_policy(name, seed=cfg.seed), eval_specs(eval_episodes, cfg.eval.seed))
        finally:
            pool.close()
        out["bot" if name == "expert" else "random"] = {"win_rate": metrics["success_rate"],
                                                         "mean_return": metrics["mean_return"]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--episodes", type=int, default=16, help="training episodes per iteration")
    parser.add_argument("--eval-episodes", type=int, default=32)
    parser.add_argument("overrides", nargs="*", help="extra key=value overrides")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "agentgym.cli", "train", "--env", "werewolf", "--algo", "grpo",
               f"train.iterations={args.iterations}", f"train.episodes_per_iter={args.episodes}",
               f"eval.every={args.iterations}", f"eval.episodes={args.eval_episodes}", "rollout.pool=local",
               "rollout.num_envs=8", f"output_dir={tmp}", "run_name=grpo", "logging.progress=false", *args.overrides]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        rows = [json.loads(line) for line in (Path(tmp) / "grpo" / "metrics.jsonl").read_text().splitlines()]
    evals = [{"iteration": r["step"], "win_rate": r["eval/success_rate"], "mean_return": r["eval/mean_return"]}
             for r in rows if "eval/success_rate" in r]
    train = [{"iteration": r["step"], "win_rate": r["rollout/success_rate"], "mean_return": r["rollout/mean_return"],
              "mean_turns": r.get("rollout/mean_turns")} for r in rows if "rollout/success_rate" in r]
    data = {"env": "Werewolf-7p-v0", "seat": "random", "partners": "rule-based bots", "model": "agentgym-tiny",
            "mode": "choose", "iterations": args.iterations, "episodes_per_iter": args.episodes,
            "eval_episodes": args.eval_episodes, "train_command": " ".join(["agentgym"] + cmd[3:]),
            "wall_time_s": round(wall, 1), "peak_rss_mb": peak_rss_mb(),
            "baselines_same_seeds": baselines(args.eval_episodes),
            "win_rate_before": evals[0]["win_rate"] if evals else None,
            "win_rate_after": evals[-1]["win_rate"] if len(evals) > 1 else None, "eval": evals, "train": train,
            "notes": "CPU only, 2 cores shared with 4 other engineers' jobs; a few iterations only, so the "
                     "before/after difference is within the noise of a 32-game evaluation (std ~0.08)."}
    print(f"win rate before {data['win_rate_before']} after {data['win_rate_after']} ({wall:.0f} s)")
    write_result("werewolf_learning", data)


if __name__ == "__main__":
    main()
