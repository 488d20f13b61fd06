"""A scripted WebShop expert that knows the goal: the demonstrations for warm starts and Agent-R.

Search page: of the offered queries (the goal's own words), the one whose results rank the goal
product highest. Results: the goal product if listed (paging with Next > / < Prev to reach it),
else the listed product the reward function scores best. Item page: click each goal option the
product offers that is not chosen yet, then Buy Now. Sub-pages: < Prev.
"""

from __future__ import annotations

from agentgym.envs.webshop import pages
from agentgym.envs.webshop.reward import get_reward, token_set_ratio


def _wanted_options(product: dict, goal: dict) -> dict[str, str]:
    """Option name -> value to choose on ``product`` for the goal's options."""
    goal_opts = goal["goal_options"]
    pairs = list(goal_opts.items()) if isinstance(goal_opts, dict) else [(None, v) for v in goal_opts]
    out = {}
    for name, value in pairs:
        if name in product["options"] and value in product["options"][name]:
            out[name] = value
            continue
        best = max(((token_set_ratio(v, value), n, v) for n, vs in product["options"].items() for v in vs
                    if n not in out), default=None)
        if best and best[0] > 85:
            out[best[1]] = best[2]
    return out


def _score(env, asin: str) -> float:
    product = env.catalog.by_asin[asin]
    return get_reward(product, env.goal, env.catalog.prices[asin], _wanted_options(product, env.goal),
                      env.nouns).reward


def expert_action(env) -> str:
    s, goal = env._s, env.goal
    if s["done"]:
        return "click[Buy Now]"                     # nothing left to do; any action is invalid now
    if s["page"] == "search":
        actions = env.admissible_actions()
        def rank(action: str) -> int:
            hits = env.engine.search(action[len("search["):-1])
            return hits.index(goal["asin"]) if goal["asin"] in hits else len(hits) + 100
        return min(actions, key=rank)
    if s["page"] == "sub":
        return f"click[{pages.PREV_PAGE}]"
    if s["page"] == "results":
        lo = (s["page_num"] - 1) * pages.PRODUCT_WINDOW
        shown = s["results"][lo:lo + pages.PRODUCT_WINDOW]
        if goal["asin"] in shown:
            return f"click[{goal['asin']}]"
        if goal["asin"] in s["results"]:
            target_page = s["results"].index(goal["asin"]) // pages.PRODUCT_WINDOW + 1
            return f"click[{pages.NEXT_PAGE if target_page > s['page_num'] else pages.PREV_PAGE}]"
        if not shown:
            return f"click[{pages.BACK_TO_SEARCH}]"
        return f"click[{max(shown, key=lambda a: _score(env, a))}]"
    product = env.catalog.by_asin[s["asin"]]
    for name, value in _wanted_options(product, goal).items():
        if s["options"].get(name) != value:
            return f"click[{value}]"
    return f"click[{pages.END_BUTTON}]"
