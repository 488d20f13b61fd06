"""Zero-shot MiniHack success of SmolLM2-135M-Instruct and the untrained embedded default model,
next to random and the expert; and what a decision costs in `choose` mode (score every
admissible action) against free `generate` mode.

    python benchmarks/minihack_zero_shot.py [--env minihack] [--episodes 16]

Every policy runs the same fixed eval seeds. Writes benchmarks/results/minihack_zero_shot.json.
"""

from __future__ import annotations

import argparse
import time

from agentgym.config import load_config
from agentgym.evaluate import evaluate
from agentgym.models import load_model
from agentgym.policies import make_policy
from common import write_result


def run(cfg, policy, episodes: int) -> dict:
    start = time.perf_counter()
    result, trajectories = evaluate(policy, cfg, episodes=episodes)
    turns = [t for traj in trajectories for t in traj.turns]
    result["wall_time_s"] = round(time.perf_counter() - start, 1)
    result["invalid_action_rate"] = round(sum(bool(t.info.get("invalid_action")) for t in turns) / max(len(turns), 1), 3)
    result["actions"] = len(turns)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="minihack")
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--generate-episodes", type=int, default=8)
    args = parser.parse_args()
    cfg = load_config(env=args.env, overrides=["rollout.pool=local"])

    results = {"random": run(cfg, make_policy("random", seed=0), args.episodes),
               "expert": run(cfg, make_policy("expert"), args.episodes)}
    for model_name in ("agentgym-tiny", "smollm2-135m"):
        model, tokenizer = load_model(model_name)
        for mode, episodes in (("choose", args.episodes), ("generate", args.generate_episodes)):
            cfg.policy.mode = mode
            policy = make_policy("hf", model=model, tokenizer=tokenizer, mode=mode, seed=cfg.seed)
            start = time.perf_counter()
            r = run(cfg, policy, episodes)
            r["ms_per_action"] = round(1000 * (time.perf_counter() - start) / max(r["actions"], 1), 1)
            results[f"{model_name}/{mode}"] = r
            print(f"{model_name:<14} {mode:<9} success {r['success_rate']:.3f}  invalid {r['invalid_action_rate']:.3f}"
                  f"  {r['ms_per_action']} ms/action", flush=True)
    print(f"random success {results['random']['success_rate']:.3f}, expert {results['expert']['success_rate']:.3f}")
    write_result("minihack_zero_shot", {
        "env": cfg.env.id, "episodes": args.episodes, "generate_episodes": args.generate_episodes,
        "sampling": dict(cfg.policy.sampling), "greedy": bool(cfg.eval.greedy), "results": results,
        "note": "ms_per_action covers the policy and the env step (local pool), batched over up to "
                f"{cfg.rollout.num_envs} envs; generate mode samples up to max_new_tokens tokens per action.",
    })


if __name__ == "__main__":
    main()
