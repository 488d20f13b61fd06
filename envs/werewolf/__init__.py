"""Werewolf: multi-agent social deduction with free-form speech (the LSPO 7-player setup).

``WerewolfGame`` (game.py) is the engine in PettingZoo's parallel API; the registered ids are
its single-agent view (``agentgym.multiagent.SeatEnv``): ``seat`` = a player, "random" or "all"
(self-play), ``partner`` = "bot", "random", a policy spec or ``{player: spec}``. The first id is
the family default.
"""

from agentgym.registry import register

_ENTRY = "agentgym.envs.werewolf.env:make_werewolf_env"

register(id="Werewolf-7p-v0", entry_point=_ENTRY, family="werewolf", max_turns=200,
         description="7-player Werewolf (2 wolves, seer, doctor, 3 villagers); one random seat, bots play the rest.")
register(id="Werewolf-5p-v0", entry_point=_ENTRY, family="werewolf", max_turns=150,
         description="5-player Werewolf (1 wolf, seer, doctor, 2 villagers); one random seat, bots play the rest.",
         roles="werewolf,seer,doctor,villager,villager")
