"""Env steps per second: agentgym's EnvPool (Ray) against ALFWorld's own batch loop
(``AlfredTWEnv.init_env``: textworld.gym's asynchronous batch env), same games, same random
admissible commands, one run each.

    ALFWORLD_DATA=../shared/data/alfworld python benchmarks/alfworld_throughput.py [--envs 4] [--steps 20]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

# Ray starts its workers at nice 15; the in-process AlfredTWEnv loop runs at nice 0. On a shared
# machine that alone would slow the pool several-fold, so both run at the same priority here.
os.environ.setdefault("RAY_worker_niceness", "0")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import peak_rss_mb, write_result  # noqa: E402


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
    infos, done = {}, {}

    def gather() -> int:
        got = 0
        while got < num_envs:
            for r in pool.wait():
                infos[r.slot], done[r.slot] = r.info, r.terminated or r.truncated or r.error is not None
                got += 1
        return got

    for slot in range(num_envs):
        pool.reset(slot, slot)
    gather()
    total = 0
    for _ in range(steps):
        for slot in range(num_envs):
            if done[slot]:       # a finished episode starts again (counted as a step, like the batch env's)
                pool.reset(slot, slot)
            else:
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
    result = {"notes": "Includes the first load+reset of each game. Both sides step ALFWorld's handcoded-expert "
                       "wrapper chain. Ray workers at nice 0 like the AlfredTWEnv loop (RAY_worker_niceness=0). "
                       "2-core machine shared with 4 other engineers (load ~10-13): one run, indicative only.",
              "envs": args.envs, "steps_per_env": args.steps, "alfworld_batch_steps_per_s": round(own, 2),
              "agentgym_pool_steps_per_s": round(ours, 2), "ratio_pool_over_alfworld": round(ours / own, 3),
              "peak_rss_mb": peak_rss_mb()}
    print(result)
    write_result("alfworld_throughput", result)


if __name__ == "__main__":
    main()
