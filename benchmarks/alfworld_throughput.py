"""Env steps per second: agentgym's EnvPool (Ray) against ALFWorld's own batch loop
(``AlfredTWEnv.init_env``: textworld.gym's asynchronous batch env), same games, same random
admissible commands, one run each.

    ALFWORLD_DATA=../shared/data/alfworld python benchmarks/alfworld_throughput.py [--envs 4] [--steps 20]
"""

from __future__ import annotations

import argparse
import os
import random
import time
from pathlib import Path

from benchmarks.common import peak_rss_mb, write_result


def alfworld_batch_loop(games: list[str], batch: int, steps: int) -> float:
    """ALFWorld's own loop: register the games with textworld.gym (AlfredTWEnv's wrappers and info
    requests, handcoded expert on) and step random admissible commands. Returns steps/s."""
    import textworld
    import textworld.gym
    from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredExpert, AlfredInfos
    infos = textworld.EnvInfos(won=True, admissible_commands=True, extras=["gamefile", "expert_plan"])
    env_id = textworld.gym.register_games(games, infos, batch_size=batch, asynchronous=True, max_episode_steps=50,
                                          wrappers=[AlfredDemangler(shuffle=False), AlfredInfos, AlfredExpert("handcoded")])
    env = textworld.gym.make(env_id)
    rng = random.Random(0)
    t0 = time.perf_counter()
    obs, info = env.reset()
    done = 0
    for _ in range(steps):
        obs, scores, dones, info = env.step([rng.choice(a) for a in info["admissible_commands"]])
        done += batch
    elapsed = time.perf_counter() - t0
    env.close()
    return done / elapsed


def pool_loop(data: Path, num_envs: int, steps: int) -> float:
    from agentgym.pool import make_pool
    pool = make_pool("ALFWorld-v0", num_envs, backend="ray", num_workers=num_envs, worker_cpus=0.5,
                     env_kwargs={"split": "eval_in_distribution", "data_dir": str(data)}, max_turns=50,
                     with_expert=True)
    rng = random.Random(0)
    t0 = time.perf_counter()
    infos = {}

    def gather() -> int:
        got = 0
        while got < num_envs:
            for r in pool.wait():
                infos[r.slot] = r.info
                got += 1
        return got

    for slot in range(num_envs):
        pool.reset(slot, slot)
    gather()
    total = 0
    for _ in range(steps):
        for slot in range(num_envs):
            pool.step(slot, rng.choice(infos[slot]["admissible_actions"]))
        total += gather()
    elapsed = time.perf_counter() - t0
    pool.close()
    return total / elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--envs", type=int, default=4)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    data = Path(os.environ.get("ALFWORLD_DATA", Path(__file__).resolve().parents[2] / "shared" / "data" / "alfworld"))
    from agentgym.envs.alfworld.games import collect_games
    games = collect_games("eval_in_distribution", str(data))[: args.envs]
    own = alfworld_batch_loop(games, args.envs, args.steps)
    ours = pool_loop(data, args.envs, args.steps)
    result = {"notes": "Includes the first load+reset of each game. 2-core machine shared with other engineers.",
              "envs": args.envs, "steps_per_env": args.steps, "alfworld_batch_steps_per_s": round(own, 2),
              "agentgym_pool_steps_per_s": round(ours, 2), "ratio_pool_over_alfworld": round(ours / own, 3),
              "peak_rss_mb": peak_rss_mb()}
    print(result)
    write_result("alfworld_throughput", result)


if __name__ == "__main__":
    main()
