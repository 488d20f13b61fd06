"""WebShop-v0: the scripted expert's and a random policy's score and success over 500 goals, through the
EnvPool (Ray actors), plus env steps per second through the pool against the raw env loop.

    python benchmarks/webshop_baselines.py [--episodes 500] [--num-envs 8]

Score is WebShop's reward at "Buy Now" (0 if the 15-turn limit is hit first); success is score == 1.
Writes benchmarks/results/webshop_baselines.json. The 2 CPU cores were shared with other jobs.
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
from agentgym.rollout import EpisodeSpec, collect  # noqa: E402
from common import write_result  # noqa: E402

ENV = "WebShop-v0"


def through_pool(backend: str, episodes: int, num_envs: int) -> dict:
    policy = make_policy(backend, seed=0)
    specs = [EpisodeSpec(seed=i) for i in range(episodes)]     # seed i = goal i: 500 distinct goals
    with make_pool(ENV, num_envs, backend="ray", with_expert=backend == "expert") as pool:
        start = time.perf_counter()
        trajs, m = collect(pool, policy, specs)
        elapsed = time.perf_counter() - start
    scores = [t.turns[-1].info.get("score", 0.0) if t.turns else 0.0 for t in trajs]
    return {"episodes": len(trajs), "avg_score": round(sum(scores) / len(scores), 4),
            "success_rate": round(m["success_rate"], 4), "mean_turns": round(m["mean_turns"], 2),
            "env_steps": m["env_steps"], "pool_steps_per_s": round(m["env_steps"] / elapsed, 1)}


def raw_steps_per_s(episodes: int) -> float:
    env = agentgym.make(ENV)
    steps, start = 0, time.perf_counter()
    for ep in range(episodes):
        _, info = env.reset(seed=ep)
        rng, done = random.Random(ep), False
        while not done:
            _, _, term, trunc, info = env.step(rng.choice(info["admissible_actions"]))
            steps, done = steps + 1, term or trunc
    return round(steps / (time.perf_counter() - start), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=500)
    parser.add_argument("--num-envs", type=int, default=8)
    args = parser.parse_args()
    init_ray()
    expert = through_pool("expert", args.episodes, args.num_envs)
    rand = through_pool("random", args.episodes, args.num_envs)
    raw = raw_steps_per_s(200)
    print("expert", expert, "\nrandom", rand, "\nraw random steps/s", raw)
    write_result("webshop_baselines", {
        "env": ENV, "expert": expert, "random": rand, "raw_env_random_steps_per_s": raw,
        "notes": "Seeds 0..N-1 pick goals 0..N-1 of WebShop-v0 (synthetic 1k catalog, 2,277 goals). Random picks "
                 "uniformly among admissible actions. Pool = Ray actors on 2 shared CPU cores; the pool's steps/s "
                 "includes Ray round trips, the raw figure is one env in one process."})


if __name__ == "__main__":
    main()
