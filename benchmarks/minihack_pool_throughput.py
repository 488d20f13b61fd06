"""Env steps per second through the EnvPool (Ray and in-process) against the raw env loop.

    python benchmarks/minihack_pool_throughput.py [--env MiniHack-Room-5x5-v0] [--episodes 60]

A random admissible-action policy drives every variant so the numbers measure the env side.
Writes benchmarks/results/minihack_pool_throughput.json.
"""

from __future__ import annotations

import argparse
import os
import random
import time

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import agentgym  # noqa: E402
from agentgym.policies import make_policy  # noqa: E402
from agentgym.pool import init_ray, make_pool  # noqa: E402
from agentgym.rollout import collect, episode_specs  # noqa: E402
from common import write_result  # noqa: E402


def raw_loop(env_id: str, episodes: int, max_turns: int) -> dict:
    env = agentgym.make(env_id, max_turns=max_turns)
    steps, start = 0, time.perf_counter()
    for ep in range(episodes):
        _, info = env.reset(seed=ep)
        rng, done = random.Random(ep), False
        while not done:
            _, _, terminated, truncated, info = env.step(rng.choice(info["admissible_actions"]))
            steps, done = steps + 1, terminated or truncated
    env.close()
    elapsed = time.perf_counter() - start
    return {"env_steps": steps, "seconds": round(elapsed, 3), "steps_per_s": round(steps / elapsed, 1)}


def pooled(env_id: str, episodes: int, max_turns: int, backend: str, num_envs: int, num_workers: int | None) -> dict:
    policy = make_policy("random", seed=0)
    with make_pool(env_id, num_envs, backend=backend, num_workers=num_workers, max_turns=max_turns) as pool:
        collect(pool, policy, episode_specs(num_envs, 1, seed=99))  # warm-up: actors started, envs built
        start = time.perf_counter()
        _, metrics = collect(pool, policy, episode_specs(episodes, 1, seed=0))
        elapsed = time.perf_counter() - start
    return {"env_steps": metrics["env_steps"], "seconds": round(elapsed, 3),
            "steps_per_s": round(metrics["env_steps"] / elapsed, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="MiniHack-Room-5x5-v0")
    parser.add_argument("--episodes", type=int, default=60)
    parser.add_argument("--max-turns", type=int, default=50)
    parser.add_argument("--num-envs", type=int, default=8)
    args = parser.parse_args()

    start = time.perf_counter()
    init_ray()
    ray_init_s = time.perf_counter() - start
    results = {"raw_single_env": raw_loop(args.env, args.episodes, args.max_turns),
               "local_pool": pooled(args.env, args.episodes, args.max_turns, "local", args.num_envs, None)}
    for workers in (1, 2):
        results[f"ray_pool_{workers}_workers"] = pooled(args.env, args.episodes, args.max_turns, "ray",
                                                        args.num_envs, workers)
    raw = results["raw_single_env"]["steps_per_s"]
    ratios = {k: round(v["steps_per_s"] / raw, 3) for k, v in results.items()}
    for name, r in results.items():
        print(f"{name:<22} {r['steps_per_s']:>9.1f} steps/s  ({ratios[name]:.2f}x raw)")
    write_result("minihack_pool_throughput", {
        "env": args.env, "episodes": args.episodes, "num_envs": args.num_envs, "policy": "random",
        "ray_init_s": round(ray_init_s, 2), "results": results, "ratio_to_raw": ratios,
    })


if __name__ == "__main__":
    main()
