"""The leaderboard's statistics against values worked out by hand (and printed tables)."""

import math

import pytest

from agentgym.leaderboard.errors import LeaderboardError
from agentgym.leaderboard.stats import mean_ci, paired_difference, summarize, wilson

Z95 = 1.959964  # the standard normal's 97.5% quantile
T95_DF3 = 3.1824  # Student's t, 97.5% quantile, 3 degrees of freedom (any t table)


def test_mean_ci_by_hand():
    # 1, 2, 3, 4: mean 2.5, squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5, sample std sqrt(5/3)
    ci = mean_ci([1, 2, 3, 4])
    se = math.sqrt(5 / 3) / math.sqrt(4)
    assert ci["n"] == 4 and ci["mean"] == 2.5
    assert ci["se"] == pytest.approx(se)
    assert ci["lo"] == pytest.approx(2.5 - T95_DF3 * se, abs=1e-4)
    assert ci["hi"] == pytest.approx(2.5 + T95_DF3 * se, abs=1e-4)


def test_mean_ci_without_spread():
    assert mean_ci([0.7]) == {"mean": 0.7, "se": None, "lo": None, "hi": None, "n": 1}
    assert mean_ci([]) == {"mean": None, "se": None, "lo": None, "hi": None, "n": 0}
    same = mean_ci([2.0, 2.0, 2.0])
    assert same["se"] == 0 and same["lo"] == same["hi"] == 2.0


def test_wilson_known_intervals():
    # 0/n and n/n have closed forms: the far end is z^2 / (n + z^2) from the boundary.
    z2 = Z95 ** 2
    none = wilson(0, 10)
    assert none["rate"] == 0 and none["lo"] == 0 and none["hi"] == pytest.approx(z2 / (10 + z2), abs=1e-6)
    every = wilson(10, 10)
    assert every["rate"] == 1 and every["hi"] == 1 and every["lo"] == pytest.approx(10 / (10 + z2), abs=1e-6)
    # 5/10, as printed in tables of the Wilson interval: [0.2366, 0.7634]
    half = wilson(5, 10)
    assert half["rate"] == 0.5 and half["n"] == 10
    assert half["lo"] == pytest.approx(0.2366, abs=1e-4) and half["hi"] == pytest.approx(0.7634, abs=1e-4)
    assert wilson(0, 0) == {"rate": None, "lo": None, "hi": None, "n": 0}
    with pytest.raises(LeaderboardError):
        wilson(3, 2)


def record(env, seed, success=False, ret=0.0, score=None, status="ok", group=None, turns=4, invalid=0):
    return {"schema": 1, "env": env, "env_id": f"{env}-v0", "seed": seed, "submission": "s", "return": ret,
            "success": success, "score": score, "score_name": "the score" if score is not None else None,
            "turns": turns, "invalid_actions": invalid, "status": status, "error": None, "group": group}


def test_paired_difference_matches_seeds():
    a = [record("webshop", s, ret=r) for s, r in [(1, 0.5), (2, 0.9), (3, 0.4), (9, 1.0)]]
    b = [record("webshop", s, ret=r) for s, r in [(3, 0.1), (1, 0.2), (2, 0.8), (7, 0.0)]]
    d = paired_difference(a, b, "return")
    # seeds 1, 2, 3 are shared: differences 0.3, 0.1, 0.3
    assert d["n"] == 3
    assert d["mean"] == pytest.approx(0.7 / 3)
    assert d["se"] == pytest.approx(mean_ci([0.3, 0.1, 0.3])["se"])
    # a failure counts as no success whatever the record says
    a[0]["status"], a[0]["success"] = "error", True
    b[0]["success"] = True
    assert paired_difference(a, b, "success")["mean"] == pytest.approx(-1 / 3)
    with pytest.raises(LeaderboardError):
        paired_difference(a + a[:1], b, "return")


def test_summarize_counts_failures_and_groups():
    records = [
        record("webshop", 1, success=True, ret=1.0, score=1.0, turns=3),
        record("webshop", 2, ret=0.2, score=0.2, turns=5, invalid=2),
        record("webshop", 3, success=True, ret=None, status="timeout", turns=10),
        record("werewolf", 1, success=True, ret=1.0, group="villager"),
        record("werewolf", 2, success=False, group="villager"),
        record("werewolf", 3, success=True, ret=1.0, group="werewolf"),
        record("werewolf", 4, success=True, status="error", group="werewolf"),
    ]
    s = summarize(records)
    assert list(s) == ["webshop", "werewolf"]
    shop = s["webshop"]
    assert shop["n"] == 3 and shop["env_id"] == "webshop-v0"
    assert shop["success"] == wilson(1, 3)  # the timed-out "success" is a failure
    assert shop["return"]["mean"] == pytest.approx(1.2 / 3)  # its null return counts as 0
    assert shop["score"]["n"] == 2 and shop["score"]["mean"] == pytest.approx(0.6)
    assert shop["score_name"] == "the score"
    assert shop["turns"] == 6 and shop["invalid_actions"] == pytest.approx(2 / 3)
    assert (shop["errors"], shop["timeouts"]) == (0, 1)
    assert shop["groups"] == {}
    wolf = s["werewolf"]
    assert wolf["success"] == wilson(2, 4) and wolf["errors"] == 1
    assert wolf["score"]["n"] == 0 and wolf["score_name"] is None
    assert wolf["groups"] == {"villager": wilson(1, 2), "werewolf": wilson(1, 2)}
