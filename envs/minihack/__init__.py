"""MiniHack (NetHack-based) navigation tasks as text envs. Ids are MiniHack's own; the
``task`` kwarg names the MiniHack task the env builds. The first id is the family default."""

from agentgym.registry import register

_ENTRY = "agentgym.envs.minihack.env:MiniHackTextEnv"

register(id="MiniHack-Room-5x5-v0", entry_point=_ENTRY, family="minihack", max_turns=30,
         description="Walk across a lit 5x5 room to the staircase down (fixed layout).",
         task="MiniHack-Room-5x5-v0")
register(id="MiniHack-Room-15x15-v0", entry_point=_ENTRY, family="minihack", max_turns=100,
         description="Walk across a lit 15x15 room to the staircase down (fixed layout).",
         task="MiniHack-Room-15x15-v0")
register(id="MiniHack-Room-Random-5x5-v0", entry_point=_ENTRY, family="minihack", max_turns=30,
         description="5x5 room with random start and staircase positions.",
         task="MiniHack-Room-Random-5x5-v0")
register(id="MiniHack-Corridor-R2-v0", entry_point=_ENTRY, family="minihack", max_turns=100,
         description="Two random rooms joined by corridors; find the staircase down in the other room.",
         task="MiniHack-Corridor-R2-v0")
register(id="MiniHack-KeyRoom-S5-v0", entry_point=_ENTRY, family="minihack", max_turns=60,
         description="Pick up a key, unlock the inner room's door, reach the staircase down.",
         task="MiniHack-KeyRoom-S5-v0")
register(id="MiniHack-River-v0", entry_point=_ENTRY, family="minihack", max_turns=100,
         description="Push boulders into a river to cross it and reach the staircase down.",
         task="MiniHack-River-v0")
