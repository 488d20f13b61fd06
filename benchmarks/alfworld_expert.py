"""ALFWorld's handcoded expert through agentgym's EnvPool on the 140 real valid_seen games, per task
type, next to the results ALFWorld 0.4.2's own expert loop recorded on the same games
(shared/data/alfworld/expert/valid_seen_expert.jsonl, 100-step cap).

    ALFWORLD_DATA=../shared/data/alfworld python benchmarks/alfworld_expert.py [--max-turns 100] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict
from pathlib import Path

from benchmarks.common import peak_rss_mb, write_result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-turns", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--episodes", type=int, default=140)
    args = ap.parse_args()
    data = Path(os.environ.get("ALFWORLD_DATA", Path(__file__).resolve().parents[2] / "shared" / "data" / "alfworld"))
    os.environ["ALFWORLD_DATA"] = str(data)

    from agentgym.policies import make_policy
    from agentgym.pool import make_pool
    from agentgym.rollout import EpisodeSpec, collect

    pool = make_pool("ALFWorld-v0", args.workers, backend="ray", num_workers=args.workers, worker_cpus=0.5,
                     env_kwargs={"split": "eval_in_distribution", "data_dir": str(data)},
                     max_turns=args.max_turns, with_expert=True, step_timeout_s=120)
    t0 = time.perf_counter()
    try:
        trajs, metrics = collect(pool, make_policy("expert"), [EpisodeSpec(i) for i in range(args.episodes)])
    finally:
        pool.close()
    wall = time.perf_counter() - t0

    ours: dict[str, list] = defaultdict(list)
    for t in trajs:
        ours[t.turns[0].info.get("task_type", "unknown") if t.turns else "unknown"].append((t.success, t.num_turns))
    ref: dict[str, list] = defaultdict(list)
    log = data / "expert" / "valid_seen_expert.jsonl"
    if log.exists():
        for line in log.open():
            rec = json.loads(line)
            ref[rec["game"].split("/")[2].split("-")[0]].append((rec["won"], rec["num_steps"]))

    def summary(rows):
        return {"games": len(rows), "success_rate": round(sum(s for s, _ in rows) / max(len(rows), 1), 4),
                "mean_steps": round(sum(n for _, n in rows) / max(len(rows), 1), 2)}

    per_type = {k: {"agentgym_pool": summary(ours.get(k, [])), "alfworld_own": summary(ref.get(k, []))}
                for k in sorted(set(ours) | set(ref))}
    result = {"notes": "ALFWorld 0.4.2 handcoded expert (AlfredExpert wrapper) on valid_seen through agentgym's Ray "
                       f"EnvPool, {args.max_turns}-turn cap; reference = ALFWorld's own expert loop (100-step cap). "
                       "2-core machine shared with other engineers: times are indicative.",
              "overall": {"agentgym_pool": summary([r for v in ours.values() for r in v]),
                          "alfworld_own": summary([r for v in ref.values() for r in v])},
              "per_task_type": per_type, "wall_time_s": round(wall, 1),
              "env_steps_per_s": round(metrics["env_steps"] / wall, 2), "peak_rss_mb": peak_rss_mb()}
    print(json.dumps(result, indent=1))
    write_result("alfworld_expert", result)


if __name__ == "__main__":
    main()
