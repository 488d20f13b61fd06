"""The kitchen in words, in two styles.

``grid``:    ReAd's format (Zhang et al. 2024, read-llm.github.io): the engine's own
             ``OvercookedGridworld.state_string`` (8-character cells; a chef is an arrow for its facing
             plus its number plus what it holds, a pot shows ``{ø..`` with its cooking ticks or ✓),
             followed by ReAd's position lines ("Cook station local ...", "Agent0 local: (row, col),
             direction: ..., hold: ..."). The static part of ReAd's prompt (the bare layout and the
             character legend) goes in the instruction (``layout_text``), not in every observation.
``objects``: an object-centric scene, as ProAgent writes it: who holds what, each pot's contents and
             timer, what lies on which counter, and how far each useful station is from the reader.

Both are from one chef's point of view ("you" is the viewer; ``viewer=None`` names both chefs, for
the central planner). The objects style writes coordinates as the engine's (x, y), x to the east and
y to the south; the grid style writes ReAd's (row, column), both counted from 0 at the top left.
"""

from __future__ import annotations

from agentgym.envs.overcooked.compat import Direction

DIRECTION_NAMES = {Direction.NORTH: "north", Direction.SOUTH: "south", Direction.EAST: "east", Direction.WEST: "west"}
GRID_LEGEND = (
    "X is a counter (a table), P a pot (cooking station), O the onion dispenser, T the tomato dispenser, "
    "D the dish (plate) dispenser, S the serving desk; a blank cell is floor. An item on a counter or in an "
    "agent's hands is written right after it: o onion, t tomato, d dish. A pot's contents follow it in braces, "
    "one ø per onion and one † per tomato: P{øø holds two onions. While a soup cooks, the number after its "
    "ingredients counts the ticks it has cooked so far (P{øøø7); ✓ means it is ready (a dish of soup: {øøø✓). "
    "An agent is an arrow ↑ ↓ ← → (the way it faces) followed by its number, 0 or 1. Each cell is one tile and "
    "one move goes one tile; north is up. Coordinates are (row, column) from 0 at the top left.")
HOLD_NAMES = {"dish": "plate", "onion": "onion", "tomato": "tomato", "soup": "soup"}   # ReAd's 'hold:' words


def held(obj) -> str:
    """'nothing', 'an onion', 'a dish', 'a dish of soup (3 onions)'."""
    if obj is None:
        return "nothing"
    if obj.name == "soup":
        return f"a dish of soup ({_ingredients(obj.ingredients)})"
    return ("an " if obj.name[0] in "aeiou" else "a ") + obj.name


def _ingredients(names) -> str:
    parts = [f"{names.count(n)} {n}{'s' if names.count(n) > 1 else ''}" for n in ("onion", "tomato") if n in names]
    return " and ".join(parts) or "nothing"


def pot_text(mdp, state, pos, old_dynamics: bool = False) -> str:
    if not state.has_object(pos):
        return "empty"
    soup = state.get_object(pos)
    contents = _ingredients(soup.ingredients)
    if soup.is_ready:
        return f"{contents}, soup ready"
    if soup.is_cooking:
        return f"{contents}, cooking, ready in {soup.cook_time_remaining} ticks"
    if old_dynamics:
        return f"{contents}, not full yet (cooks by itself with 3 ingredients)"
    return f"{contents}, not cooking (someone must 'start cooking')"


def _who(i: int, viewer: int | None) -> str:
    return "You" if i == viewer else f"Chef {i}"


def layout_text(mdp) -> str:
    """The static part of ReAd's prompt: the bare layout and the character legend (for the instruction)."""
    rows = ["".join(r) for r in mdp.terrain_mtx]
    return (f"[Layout Information]\nThe kitchen is a {len(rows)} × {len(rows[0])} grid:\n" + "\n".join(rows)
            + f"\n[Character meaning]\n{GRID_LEGEND}")


def _rc(pos) -> str:
    """Engine (x, y) as ReAd's '(row, col)'."""
    return f"({pos[1]}, {pos[0]})"


def _cook_state(soup) -> str:
    if soup is None or not (soup.is_cooking or soup.is_ready):
        return "soup has not yet begun to cook"
    if soup.is_ready:
        return "soup has been cooked"
    return f"soup has been cooked for {soup.cook_time - soup.cook_time_remaining} steps"   # ticks so far


def grid_text(mdp, state, viewer: int | None) -> str:
    """ReAd's '[Current Env state]': the engine's state_string, then one line per pot, station and chef."""
    grid = "\n".join(line.rstrip() for line in mdp.state_string(state).rstrip().split("\n"))
    lines = ["[Current Env state]:", grid]
    for pos in mdp.get_pot_locations():
        soup = state.get_object(pos) if state.has_object(pos) else None
        onions = soup.ingredients.count("onion") if soup else 0
        tomatoes = f" and {soup.ingredients.count('tomato')} tomatoes" if soup and "tomato" in soup.ingredients else ""
        lines.append(f"Cook station local {_rc(pos)}, there are {onions} onions{tomatoes} on it, {_cook_state(soup)}")
    stations = [("Onions", mdp.get_onion_dispenser_locations()), ("Tomatoes", mdp.get_tomato_dispenser_locations()),
                ("Dishes", mdp.get_dish_dispenser_locations()), ("Server desk", mdp.get_serving_locations())]
    lines += [f"{name} local: " + " ".join(_rc(p) for p in sorted(tiles, key=lambda p: (p[1], p[0])))
              for name, tiles in stations if tiles]
    on_counters: dict[str, list] = {}
    for pos, obj in state.objects.items():
        if mdp.get_terrain_type_at_pos(pos) == "X":
            on_counters.setdefault(obj.name, []).append(pos)
    for name in ("onion", "tomato", "dish", "soup"):
        if name in on_counters:
            tiles = " ".join(_rc(p) for p in sorted(on_counters[name], key=lambda p: (p[1], p[0])))
            lines.append(f"The following coordinates have {name.capitalize()}s on the table: {tiles}")
    for i, p in enumerate(state.players):
        hold = HOLD_NAMES[p.held_object.name] if p.held_object else "nothing"
        lines.append(f"Agent{i} local: {_rc(p.position)}, direction: {DIRECTION_NAMES[p.orientation]}, hold: {hold}")
    if viewer is not None:
        lines.append(f"You are Agent{viewer} (chef_{viewer}).")
    return "\n".join(lines)


def objects_text(mdp, state, viewer: int | None, planner=None, old_dynamics: bool = False) -> str:
    parts = []
    for i, p in enumerate(state.players):
        parts.append(f"<{'You' if i == viewer else 'Chef ' + str(i)}> (chef_{i}) hold{'s' if i != viewer else ''} "
                     f"{held(p.held_object)}.")
    pots = [f"<Pot {k}> {pot_text(mdp, state, pos, old_dynamics)}." for k, pos in enumerate(mdp.get_pot_locations())]
    kitchen = " ".join(pots)
    on_counters = sorted((pos, obj.name) for pos, obj in state.objects.items() if mdp.get_terrain_type_at_pos(pos) == "X")
    counters = ("Counters: " + ", ".join(f"{'an' if n[0] in 'aeiou' else 'a'} {n} at {pos}" for pos, n in on_counters)
                + ".") if on_counters else "Counters: nothing on them."
    lines = [" ".join(parts), f"Kitchen states: {kitchen}", counters]
    if planner is not None and viewer is not None:
        lines.append(distances(mdp, state, viewer, planner))
    return "\n".join(lines)


def distances(mdp, state, viewer: int, planner) -> str:
    """Steps from the viewer to the nearest station of each kind ('unreachable' when walls cut it off)."""
    player = state.players[viewer]
    stations = [("onion dispenser", mdp.get_onion_dispenser_locations()), ("tomato dispenser", mdp.get_tomato_dispenser_locations()),
                ("dish dispenser", mdp.get_dish_dispenser_locations()), ("pot", mdp.get_pot_locations()),
                ("serving counter", mdp.get_serving_locations())]
    out = []
    for name, tiles in stations:
        if not tiles:
            continue
        costs = [planner.mp.get_plan(player.pos_and_or, g)[2] for t in tiles for g in planner.goals(t, player)]
        out.append(f"{name} {min(costs)} steps" if costs else f"{name} unreachable")
    return "Distances from you: " + ", ".join(out) + "."
