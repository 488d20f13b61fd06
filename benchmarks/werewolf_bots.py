"""Thousands of seeded Werewolf games between the rule-based bots: team win rates, game length,
and a sanity table showing that roles matter (the villagers with and without seer and doctor,
and bots against players choosing uniformly among the admissible actions).

    python benchmarks/werewolf_bots.py [--games 2000]

Writes benchmarks/results/werewolf_bots.json and .png.
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from agentgym.envs.werewolf.game import WerewolfGame  # noqa: E402
from common import RESULTS, write_result  # noqa: E402

SETUPS = {
    "7p: 2 wolves, seer, doctor, 3 villagers (LSPO)": "werewolf,werewolf,seer,doctor,villager,villager,villager",
    "7p: no doctor (seer + 4 villagers)": "werewolf,werewolf,seer,villager,villager,villager,villager",
    "7p: no seer (doctor + 4 villagers)": "werewolf,werewolf,doctor,villager,villager,villager,villager",
    "7p: neither seer nor doctor": "werewolf,werewolf,villager,villager,villager,villager,villager",
    "5p: 1 wolf, seer, doctor, 2 villagers": "werewolf,seer,doctor,villager,villager",
}


def run(roles: str, games: int, random_team: str | None = None) -> dict:
    """Bot games; ``random_team`` ("villagers" or "werewolves") plays uniformly at random instead."""
    game = WerewolfGame(roles=roles)
    winners, days, invalid = Counter(), [], 0
    start = time.perf_counter()
    for seed in range(games):
        rng = random.Random(seed)
        obs, infos = game.reset(seed=seed)
        while game.agents:
            actions = {}
            for a in game.acting():
                if random_team and game.team(a) == random_team:
                    options = infos[a].get("admissible_actions") or ["..."]
                    actions[a] = rng.choice(options)
                else:
                    actions[a] = game.bot_action(a)
            obs, rewards, terms, truncs, infos = game.step(actions)
            invalid += sum(infos[a]["invalid_action"] for a in actions)
        winners[game.winner or "none"] += 1
        days.append(game.day)
    return {"games": games, "villagers_win_rate": winners["villagers"] / games,
            "werewolves_win_rate": winners["werewolves"] / games, "no_winner_rate": winners["none"] / games,
            "mean_days": sum(days) / games, "max_days": max(days), "invalid_actions": invalid,
            "games_per_s": round(games / (time.perf_counter() - start), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", type=int, default=2000)
    args = parser.parse_args()
    table = {}
    for name, roles in SETUPS.items():
        table[name] = run(roles, args.games)
        print(f"{name:<48} villagers {table[name]['villagers_win_rate']:.3f}  days {table[name]['mean_days']:.2f}")
    lspo = SETUPS[next(iter(SETUPS))]
    for team in ("villagers", "werewolves"):
        name = f"7p LSPO setup, {team} play uniformly at random"
        table[name] = run(lspo, args.games, random_team=team)
        print(f"{name:<48} villagers {table[name]['villagers_win_rate']:.3f}  days {table[name]['mean_days']:.2f}")
    write_result("werewolf_bots", {
        "games_per_setup": args.games, "seeds": f"0..{args.games - 1}", "setups": SETUPS, "results": table,
        "notes": "Rule-based bots in every seat (envs/werewolf/bots.py) unless a team plays at random. "
                 "CPU, 2 cores shared with other engineers' jobs (games_per_s is indicative only)."})
    fig, ax = plt.subplots(figsize=(8, 4))
    names = list(table)
    ax.barh(range(len(names)), [table[n]["villagers_win_rate"] for n in names], color="tab:green")
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set(xlabel="villagers' win rate", xlim=(0, 1), title=f"Werewolf bot games ({args.games} seeds each)")
    fig.tight_layout()
    fig.savefig(RESULTS / "werewolf_bots.png", dpi=120)


if __name__ == "__main__":
    main()
