"""Learning curves with the embedded default model on CPU: GRPO and PPO (or any algorithms)
against random and the scripted expert, success rate against environment steps, for any env.

    python benchmarks/learning.py [--env minihack] [--iterations 20] [--algos grpo,ppo] [key=value ...]
    python benchmarks/learning.py --env webshop --iterations 8 --algos grpo train.warm_start.episodes=64

The key=value overrides apply to every run and to the random/expert baselines (same eval seeds).

Each algorithm runs `agentgym train` (default config, Ray pool) in a subprocess; its
metrics.jsonl gives the curve (training-episode success, sampled) and the periodic evaluation
on fixed seeds. Random and expert are evaluated on the same seeds. Writes
benchmarks/results/<family>_learning.json and .png (``--name`` to change it).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from agentgym.config import load_config  # noqa: E402
from agentgym.evaluate import evaluate  # noqa: E402
from agentgym.policies import make_policy  # noqa: E402
from agentgym.registry import spec as env_spec  # noqa: E402
from common import RESULTS, write_result  # noqa: E402


def run_algo(algo: str, env: str, iterations: int, out_dir: Path, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "agentgym.cli", "train", "--env", env, "--algo", algo,
           f"train.iterations={iterations}", f"output_dir={out_dir}", f"run_name={algo}",
           "logging.progress=false", *extra]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    rows = [json.loads(line) for line in (out_dir / algo / "metrics.jsonl").read_text().splitlines()]
    curve = [{"iteration": r["step"], "env_steps": r["rollout/env_steps_total"],
              "success_rate": r["rollout/success_rate"], "mean_return": r["rollout/mean_return"]}
             for r in rows if "rollout/success_rate" in r]
    evals = [{"iteration": r["step"], "env_steps": r["rollout/env_steps_total"],
              "success_rate": r["eval/success_rate"], "mean_return": r["eval/mean_return"]}
             for r in rows if "eval/success_rate" in r]
    return {"command": " ".join(["agentgym"] + cmd[3:]), "wall_time_s": round(wall, 1),
            "peak_rss_mb_driver": round(max(r.get("charts/peak_rss_mb", 0) for r in rows), 1),
            "curve": curve, "eval": evals, "final_eval_success_rate": evals[-1]["success_rate"] if evals else None}


def baseline(policy_name: str, env: str, overrides: list[str]) -> dict:
    cfg = load_config(env=env, overrides=overrides)
    result, _ = evaluate(make_policy(policy_name, seed=cfg.seed), cfg)
    return result


def plot(data: dict, path: Path) -> None:
    """Success rate and mean return (WebShop's score) against env steps, side by side."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for ax, key, label in zip(axes, ("success_rate", "mean_return"), ("success rate", "mean return (score)")):
        for algo, color in zip(data["algos"], ["tab:blue", "tab:orange", "tab:green"]):
            r = data["algos"][algo]
            ax.plot([p["env_steps"] for p in r["curve"]], [p[key] for p in r["curve"]], color=color, alpha=0.5,
                    label=f"{algo} (training episodes)")
            ax.plot([p["env_steps"] for p in r["eval"]], [p[key] for p in r["eval"]], "o--", color=color,
                    label=f"{algo} (eval, fixed seeds)")
        ax.axhline(data["random"][key], color="gray", ls=":", label="random")
        ax.axhline(data["expert"][key], color="black", ls=":", label="expert")
        ax.set(xlabel="environment steps", ylabel=label)
        ax.legend(fontsize=8, loc="best")
    fig.suptitle(f"{data['env']}: {data['model']} on CPU")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="minihack")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--algos", type=lambda s: s.split(","), default=["grpo", "ppo"], help="comma-separated, e.g. grpo,ppo")
    parser.add_argument("--name", default=None, help="result file name (default: <env family>_learning)")
    parser.add_argument("overrides", nargs="*", help="extra key=value overrides for every run")
    args = parser.parse_args()

    cfg = load_config(env=args.env, overrides=args.overrides)
    args.name = args.name or f"{env_spec(cfg.env.id).family}_learning"
    data = {"env": cfg.env.id, "overrides": args.overrides, "model": cfg.model.path, "iterations": args.iterations,
            "episodes_per_iter": cfg.train.episodes_per_iter, "eval_episodes": cfg.eval.episodes,
            "random": baseline("random", args.env, args.overrides),
            "expert": baseline("expert", args.env, args.overrides), "algos": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for algo in args.algos:
            data["algos"][algo] = run_algo(algo, args.env, args.iterations, Path(tmp), args.overrides)
            r = data["algos"][algo]
            print(f"{algo}: final eval success {r['final_eval_success_rate']} in {r['wall_time_s']} s, "
                  f"peak driver RSS {r['peak_rss_mb_driver']} MB")
    print(f"random {data['random']['success_rate']:.3f} (return {data['random']['mean_return']:.3f}), "
          f"expert {data['expert']['success_rate']:.3f} (return {data['expert']['mean_return']:.3f})")
    write_result(args.name, data)
    plot(data, RESULTS / f"{args.name}.png")


if __name__ == "__main__":
    main()
