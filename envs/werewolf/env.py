"""The registered entry point: a Werewolf game seen from one seat (or every seat)."""

from __future__ import annotations

from typing import Any

from agentgym.envs.werewolf.game import WerewolfGame
from agentgym.multiagent import SeatEnv


def make_werewolf_env(seat: str = "random", partner: Any = "bot", **game_kwargs) -> SeatEnv:
    """``seat``: "player_N", "random" or "all" (self-play); ``partner``: see ``SeatEnv``;
    ``game_kwargs``: ``WerewolfGame``'s (roles, discussion_rounds, max_days, ...)."""
    return SeatEnv(WerewolfGame(**game_kwargs), seat=seat, partner=partner)
