"""Overcooked-AI: two-chef cooperation as a text environment (docs/envs/overcooked.md).

Per layout: ``Overcooked-<Layout>-v0`` (skills, one chef learns, the other is the scripted bot),
``-Primitive-v0`` (north/south/east/west/stay/interact every tick) and ``-Central-v0`` (one
decision sets both chefs' skills, as ReAd's central planner). ``agentgym.make(id, seat="all")``
is self-play; ``partner=`` picks who plays the other chef. The first id is the family default.
Registered ids run the papers' 400 engine ticks (an episode has at most 400 decisions); shorter CPU
runs pass ``horizon=100`` (the soup target scales with it).
"""

from agentgym.registry import register

_SEAT = "agentgym.envs.overcooked.game:make_overcooked_env"
_CENTRAL = "agentgym.envs.overcooked.game:OvercookedCentralEnv"
_LAYOUTS = {"CrampedRoom": "cramped_room", "AsymmetricAdvantages": "asymmetric_advantages",
            "CoordinationRing": "coordination_ring", "ForcedCoordination": "forced_coordination",
            "CounterCircuit": "counter_circuit"}

for _name, _layout in _LAYOUTS.items():
    register(id=f"Overcooked-{_name}-v0", entry_point=_SEAT, family="overcooked", max_turns=400,
             description=f"Overcooked {_layout}: play one chef with skills next to a scripted chef (400 ticks).",
             layout=_layout, action_level="skill", horizon=400)
for _name, _layout in _LAYOUTS.items():
    register(id=f"Overcooked-{_name}-Primitive-v0", entry_point=_SEAT, family="overcooked", max_turns=400,
             description=f"Overcooked {_layout}: one chef, one move or interact per tick, ASCII grid view.",
             layout=_layout, action_level="primitive", obs_style="grid", horizon=400)
for _name, _layout in _LAYOUTS.items():
    register(id=f"Overcooked-{_name}-Central-v0", entry_point=_CENTRAL, family="overcooked", max_turns=400,
             description=f"Overcooked {_layout}: a central planner sets both chefs' skills (joint actions).",
             layout=_layout, action_level="skill", horizon=400)
