"""Overcooked: scripted pair, random pair and expert per layout, over fixed seeds, through the EnvPool.

    python benchmarks/overcooked_baselines.py [--episodes 4] [--horizon 400]

- scripted pair: the learner's seat is played by the scripted greedy chef too (policy backend
  ``expert`` = ``bot_action``), partner ``bot``: the planner-based greedy pair.
- random pair: uniform over admissible skills for both chefs (learner ``random``, partner ``random``).
- expert (central): the central-planner id driven by its ``expert_action`` (both bots' joint skill).
- primitive scripted pair: the same greedy chefs acting one move per tick.
Writes benchmarks/results/overcooked_baselines.json (soups per episode, success rate per layout).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402

from agentgym.policies import make_policy  # noqa: E402
from agentgym.pool import make_pool  # noqa: E402
from agentgym.rollout import EpisodeSpec, collect  # noqa: E402

LAYOUTS = {"CrampedRoom": "cramped_room", "AsymmetricAdvantages": "asymmetric_advantages",
           "CoordinationRing": "coordination_ring", "ForcedCoordination": "forced_coordination",
           "CounterCircuit": "counter_circuit"}
# name -> (id suffix, learner policy backend, env kwargs)
SETTINGS = {"scripted_pair": ("", "expert", {"seat": "random", "partner": "bot"}),
            "random_pair": ("", "random", {"seat": "random", "partner": "random"}),
            "expert_central": ("-Central", "expert", {}),
            "scripted_pair_primitive": ("-Primitive", "expert", {"seat": "random", "partner": "bot"})}


def run(env_id: str, backend: str, kwargs: dict, episodes: int, horizon: int) -> dict:
    pool = make_pool(env_id, min(episodes, 4), backend="local", env_kwargs={**kwargs, "horizon": horizon},
                     max_turns=horizon, with_expert=backend == "expert")
    try:
        t0 = time.time()
        trajs, _ = collect(pool, make_policy(backend, seed=0), [EpisodeSpec(seed=1000 + i) for i in range(episodes)])
        seconds = time.time() - t0
    finally:
        pool.close()
    soups = [t.turns[-1].info.get("soups", 0) for t in trajs]
    return {"soups_mean": statistics.mean(soups), "soups": soups, "score_mean": 20 * statistics.mean(soups),
            "success_rate": statistics.mean(float(bool(t.success)) for t in trajs),
            "decisions_mean": statistics.mean(len(t.turns) for t in trajs), "seconds": round(seconds, 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--horizon", type=int, default=400)
    args = parser.parse_args()
    results = {}
    for name, layout in LAYOUTS.items():
        results[layout] = {}
        for setting, (suffix, backend, kwargs) in SETTINGS.items():
            results[layout][setting] = run(f"Overcooked-{name}{suffix}-v0", backend, kwargs, args.episodes, args.horizon)
            print(layout, setting, results[layout][setting], flush=True)
    from agentgym.envs.overcooked.game import default_target
    write_result("overcooked_baselines", {
        "horizon_ticks": args.horizon, "episodes_per_setting": args.episodes, "seeds": f"1000..{999 + args.episodes}",
        "targets": {layout: default_target(layout, args.horizon) for layout in LAYOUTS.values()},
        "results": results,
        "notes": "Local in-process EnvPool on a 2-core machine shared with other engineers (timings are indicative). "
                 "Soups are 3-onion soups (20 points each) under overcooked-ai 1.1.0's dynamics (start cooking by "
                 "interacting with a full pot)."})


if __name__ == "__main__":
    main()
