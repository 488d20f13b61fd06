"""Leaderboard statistics, derived only from per-episode records, so anyone can recompute a board.

A record is one line of a submission's episodes.jsonl (``env``, ``seed``, ``return``,
``success``, ``score``, ``turns``, ``invalid_actions``, ``status``, ``group``, ...). An episode
whose status is not ``"ok"`` (a timeout, an error) counts as a failure: success False, its return
as recorded (null counts as 0).

Intervals: Student's t for means, Wilson for rates (it stays inside [0, 1] and is not empty at
0/n or n/n). With fewer than two values there is no measurable spread: ``se``, ``lo`` and ``hi``
are None rather than a zero-width interval that would claim certainty.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Iterable

from scipy import stats as scipy_stats

from agentgym.leaderboard.errors import LeaderboardError


def mean_ci(values: Iterable[float], confidence: float = 0.95) -> dict[str, Any]:
    """Mean, standard error (sample std, ddof=1, over sqrt n) and Student-t confidence interval."""
    values = [float(v) for v in values]
    n = len(values)
    if n == 0:
        return {"mean": None, "se": None, "lo": None, "hi": None, "n": 0}
    mean = sum(values) / n
    if n == 1:
        return {"mean": mean, "se": None, "lo": None, "hi": None, "n": 1}
    se = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n)
    half = float(scipy_stats.t.ppf((1 + confidence) / 2, n - 1)) * se
    return {"mean": mean, "se": se, "lo": mean - half, "hi": mean + half, "n": n}


def wilson(successes: int, n: int, confidence: float = 0.95) -> dict[str, Any]:
    """Success rate with its Wilson score interval."""
    if not 0 <= successes <= n:
        raise LeaderboardError(f"{successes} successes out of {n} episodes is not a rate.")
    if n == 0:
        return {"rate": None, "lo": None, "hi": None, "n": 0}
    z = float(scipy_stats.norm.ppf((1 + confidence) / 2))
    p = successes / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # at 0/n and n/n one end is exactly the boundary; say so instead of leaving rounding error
    lo = 0.0 if successes == 0 else center - half
    hi = 1.0 if successes == n else center + half
    return {"rate": p, "lo": lo, "hi": hi, "n": n}


def failed(record: dict) -> bool:
    return record.get("status") != "ok"


def value(record: dict, key: str) -> float | None:
    """The number a record holds under key, with failures counted as such (success False, return 0 if null)."""
    if key == "success":
        return 0.0 if failed(record) else float(bool(record["success"]))
    if key == "return" and record.get("return") is None:
        return 0.0
    v = record.get(key)
    return None if v is None else float(v)


def paired_difference(records_a: list[dict], records_b: list[dict], key: str,
                      confidence: float = 0.95) -> dict[str, Any]:
    """Mean of a - b over the episodes both ran, matched by (env, seed); pairing removes the seeds'
    own difficulty from the spread, so the interval is tighter than comparing two means."""
    a, b = by_episode(records_a), by_episode(records_b)
    diffs = [value(a[k], key) - value(b[k], key) for k in sorted(a.keys() & b.keys())
             if value(a[k], key) is not None and value(b[k], key) is not None]
    return mean_ci(diffs, confidence)


def by_episode(records: list[dict]) -> dict[tuple[str, int], dict]:
    episodes = {}
    for r in records:
        k = (r["env"], r["seed"])
        if k in episodes:
            raise LeaderboardError(f"episode {k[0]} seed {k[1]} is recorded twice in submission {r.get('submission')}.")
        episodes[k] = r
    return episodes


def summarize(records: list[dict]) -> dict[str, dict]:
    """Per env (in the order the records first name it): success, return, family score, turns,
    invalid actions, errors and timeouts; and success per group (a Werewolf role) when records carry one."""
    envs = defaultdict(list)
    for r in records:
        envs[r["env"]].append(r)
    summary = {}
    for env, rs in envs.items():
        n = len(rs)
        wins = [value(r, "success") for r in rs]
        scored = [r for r in rs if r.get("score") is not None]
        groups = defaultdict(list)
        for r, win in zip(rs, wins):
            if r.get("group") is not None:
                groups[r["group"]].append(win)
        summary[env] = {
            "env_id": rs[0].get("env_id"),
            "n": n,
            "success": wilson(int(sum(wins)), n),
            "return": mean_ci(value(r, "return") for r in rs),
            "score": mean_ci(value(r, "score") for r in scored),
            "score_name": scored[0].get("score_name") if scored else None,
            "turns": sum(r["turns"] for r in rs) / n,
            "invalid_actions": sum(r["invalid_actions"] for r in rs) / n,
            "errors": sum(r.get("status") == "error" for r in rs),
            "timeouts": sum(r.get("status") == "timeout" for r in rs),
            "groups": {g: wilson(int(sum(w)), len(w)) for g, w in sorted(groups.items())},
        }
    return summary
