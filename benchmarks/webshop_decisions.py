"""What each WebShop decision is worth, and which of them a trained policy has learned.

    python benchmarks/webshop_decisions.py --checkpoint warm_start=/path/to/model [--episodes 256]

Part 1 plays scripted policies on the eval goals that differ in one decision each: which product
to click on the results page (the first listed, a random one, the goal product), which options
to click (the goal's, random ones, none). Part 2 plays each given checkpoint (sampled, as
``agentgym eval`` does) and counts, per decision, how often it chose what the expert would,
beside chance (a uniform pick among the same candidates); the scripted expert and the random
policy are counted first, for scale. Writes
benchmarks/results/<name>.json.
"""

from __future__ import annotations

import argparse
import random
import re
import time
from collections import Counter

from common import write_result

from agentgym.envs.webshop import pages
from agentgym.envs.webshop.env import PRICE_CLAUSE
from agentgym.envs.webshop.expert import expert_action
from agentgym.registry import make

NAV = {pages.BACK_TO_SEARCH, pages.PREV_PAGE, pages.NEXT_PAGE, pages.END_BUTTON, *pages.SUB_PAGES}


def goal_values(instruction: str) -> set[str]:
    """The option values an instruction asks for ("... with color: beige, and size: small, and price ...")."""
    return {v.strip() for v in re.findall(r":\s*([^,]+)", PRICE_CLAUSE.sub("", instruction.lower()))}


def scripted_score(item: str, options: str, episodes: int, seed: int = 0) -> float:
    """Mean score of: the first query; then the `item` product (first | random | goal); then the
    `options` (goal | random | none); then Buy Now."""
    env, rng, total = make("WebShop-v0"), random.Random(seed), 0.0
    shop = env.unwrapped
    for i in range(episodes):
        _, info = env.reset(seed=100_000 + i)
        _, _, _, _, info = env.step(info["admissible_actions"][0])
        products = [a for a in info["admissible_actions"] if a[6:-1] not in NAV]
        pick = {"first": products[0], "random": rng.choice(products), "goal": None}[item] or expert_action(shop)
        _, _, _, _, info = env.step(pick)
        values = [a for a in info["admissible_actions"] if a[6:-1] not in NAV]
        wanted = goal_values(shop.goal["instruction_text"])
        chosen = {"goal": [a for a in values if a[6:-1].lower() in wanted],
                  "random": rng.sample(values, min(2, len(values))), "none": []}[options]
        for a in chosen:
            env.step(a)
        _, reward, _, _, _ = env.step(f"click[{pages.END_BUTTON}]")
        total += reward
    return total / episodes


def decision_stats(trajectories) -> dict:
    """Per decision type: the policy's rate of the expert-like choice and chance's rate (a uniform
    pick among the same admissible actions, which the turn's info holds)."""
    c = Counter()
    for t in trajectories:
        wanted = goal_values(t.instruction)
        for turn in t.turns:
            offered = [a[6:-1] for a in turn.info.get("admissible_actions", [])]
            value, obs = turn.action[6:-1], turn.observation
            if value not in offered:                                    # an invalid action: not a choice
                continue
            if "(Total results" in obs and value not in NAV:
                listed = [v for v in offered if v not in NAV]
                c["product_clicks"] += 1
                c["product_first"] += value == listed[0]
                c["product_chance"] += 1 / len(listed)
            elif "Rating:" in obs and pages.END_BUTTON in obs:          # an item page
                if value in NAV:
                    c["buy" if value == pages.END_BUTTON else "item_page_nav"] += 1
                    continue
                values = [v for v in offered if v not in NAV]
                c["option_clicks"] += 1
                c["option_wanted"] += value.lower() in wanted
                c["option_chance"] += sum(v.lower() in wanted for v in values) / len(values)
    rate = lambda k, n: round(c[k] / c[n], 3) if c[n] else None  # noqa: E731
    return {"counts": {k: round(v, 1) for k, v in c.items()},
            "product_first_rate": rate("product_first", "product_clicks"),
            "product_first_chance": rate("product_chance", "product_clicks"),
            "option_wanted_rate": rate("option_wanted", "option_clicks"),
            "option_wanted_chance": rate("option_chance", "option_clicks")}


def policy_stats(path: str, episodes: int) -> dict:
    """Play the eval goals with ``path`` ("expert", "random", or a model / checkpoint folder)."""
    from agentgym.config import load_config
    from agentgym.evaluate import evaluate
    from agentgym.models import load_model, model_folder
    from agentgym.policies import backend_options, make_policy

    cfg = load_config(env="webshop", overrides=["rollout.pool=local"])
    if path in ("expert", "random"):
        policy = make_policy(path, seed=0)
    else:
        model, tokenizer = load_model(model_folder(path), dtype="float32")
        policy = make_policy("hf", model=model, tokenizer=tokenizer, mode="choose", seed=0, device="cpu",
                             **backend_options(cfg, "hf"))
    t0 = time.perf_counter()
    result, trajectories = evaluate(policy, cfg, episodes=episodes, progress=True)
    wall = time.perf_counter() - t0
    decisions = sum(t.num_turns for t in trajectories)
    return {"path": path, "eval_score": result["mean_return"], "eval_success_rate": result["success_rate"],
            "decisions": decisions, "s_per_decision": round(wall / max(1, decisions), 4),
            **decision_stats(trajectories)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", nargs="*", default=[], help="label=path of a model or checkpoint folder")
    p.add_argument("--episodes", type=int, default=256)
    p.add_argument("--name", default="webshop_decisions")
    args = p.parse_args(argv)
    scripted = {f"{item} product, {options} options": round(scripted_score(item, options, args.episodes), 3)
                for item in ("goal", "first", "random") for options in ("goal", "random", "none")}
    print(scripted)
    checkpoints = {}
    for spec in ["expert", "random", *args.checkpoint]:
        label, _, path = spec.partition("=")
        checkpoints[label] = policy_stats(path or label, args.episodes)
        print(label, checkpoints[label])
    write_result(args.name, {"env": "WebShop-v0", "episodes": args.episodes, "scripted_scores": scripted,
                             "checkpoints": checkpoints})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
