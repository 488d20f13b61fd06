"""check-env's random episode follows the env's registered turn limit, and stays strict without one."""

from agentgym.check import check_env, episode_cap
from agentgym.core import TextEnv
from agentgym.registry import register


class CountdownEnv(TextEnv):
    """Ends by itself (with ``success``) after ``length`` steps, or never when ``length`` is None."""

    def __init__(self, length: int | None = 300):
        self.length, self.t = length, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return "t=0", {"instruction": "Say 'tick' until the end.", "admissible_actions": ["tick"]}

    def step(self, action):
        valid = str(action) == "tick"
        self.t += valid
        done = self.length is not None and self.t >= self.length
        info = {"admissible_actions": ["tick"], "invalid_action": not valid}
        if done:
            info["success"] = True
        return f"t={self.t}", 0.0, done, False, info


_EP = f"{__name__}:CountdownEnv"
register("AgentgymTest-Countdown300-v0", _EP, max_turns=300, family="agentgym-test", length=300)
register("AgentgymTest-Endless-v0", _EP, family="agentgym-test", length=None)
register("AgentgymTest-Countdown300-Limit150-v0", _EP, max_turns=150, family="agentgym-test", length=300)
register("AgentgymTest-Countdown100-Limit50-v0", _EP, max_turns=50, family="agentgym-test", length=100)


def _episode_problems(env_id: str, **kw) -> list[str]:
    return [p.message for p in check_env(env_id, fuzz=20, **kw) if p.check == "episode"]


def test_cap_follows_a_registered_limit_longer_than_max_steps():
    assert episode_cap("AgentgymTest-Countdown300-v0", 200) == 300
    assert _episode_problems("AgentgymTest-Countdown300-v0") == []   # 300 steps > the default 200
    # the Overcooked ids run the papers' 400 ticks, so their cap is 400
    assert episode_cap("Overcooked-CrampedRoom-Primitive-v0") == 400


def test_cap_never_drops_below_max_steps():
    assert episode_cap("AgentgymTest-Countdown100-Limit50-v0", 200) == 200
    assert episode_cap("AgentgymTest-Endless-v0", 200) == 200
    assert episode_cap("AgentgymTest-Endless-v0", 7) == 7


def test_an_env_without_a_limit_still_fails_when_endless():
    problems = _episode_problems("AgentgymTest-Endless-v0", max_steps=50)
    assert len(problems) == 1 and "did not end within 50 steps" in problems[0]


def test_truncation_at_the_limit_still_needs_success():
    # the wrapper truncates at max_turns=150 before the env ends itself: no 'success' -> a finding
    problems = _episode_problems("AgentgymTest-Countdown300-Limit150-v0")
    assert len(problems) == 1 and "success" in problems[0]
