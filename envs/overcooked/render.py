"""The kitchen in words, in two styles.

``grid``:    an ASCII map with a legend, in the spirit of ReAd's prompts: one character per tile,
             chefs drawn as their number, objects on counters as lower-case letters, followed by one
             line per chef (position, facing, holding) and one per pot.
``objects``: an object-centric scene, as ProAgent writes it: who holds what, each pot's contents and
             timer, what lies on which counter, and how far each useful station is from the reader.

Both are from one chef's point of view ("you" is the viewer; ``viewer=None`` names both chefs, for
the central planner). Coordinates are (x, y) with x to the east and y to the south, as in the engine.
"""

from __future__ import annotations

from agentgym.envs.overcooked.compat import Direction

DIRECTION_NAMES = {Direction.NORTH: "north", Direction.SOUTH: "south", Direction.EAST: "east", Direction.WEST: "west"}
TILE_NAMES = {"X": "counter", "P": "pot", "O": "onion dispenser", "T": "tomato dispenser", "D": "dish dispenser",
              "S": "serving counter", " ": "floor"}
OBJECT_CHARS = {"onion": "o", "tomato": "t", "dish": "d", "soup": "s"}
LEGEND = ("Legend: X counter, P pot, O onion dispenser, T tomato dispenser, D dish dispenser, S serving counter, "
          "space floor, 0/1 chefs, o/t/d/s an onion/tomato/dish/soup lying on a counter.")


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


def chef_lines(state, viewer: int | None) -> list[str]:
    lines = []
    for i, p in enumerate(state.players):
        name = _who(i, viewer)
        verb = "are" if name == "You" else "is"
        lines.append(f"{name} (chef_{i}) {verb} at {p.position} facing {DIRECTION_NAMES[p.orientation]}, "
                     f"holding {held(p.held_object)}.")
    return lines


def grid_text(mdp, state, viewer: int | None, old_dynamics: bool = False) -> str:
    rows = [list(row) for row in mdp.terrain_mtx]
    for pos, obj in state.objects.items():
        x, y = pos
        if rows[y][x] == "X":
            rows[y][x] = OBJECT_CHARS.get(obj.name, "?")
    for i, p in enumerate(state.players):
        x, y = p.position
        rows[y][x] = str(i)
    width = len(rows[0])
    header = "   " + "".join(str(x % 10) for x in range(width))
    body = [f"{y:2d} " + "".join(r) for y, r in enumerate(rows)]
    pots = [f"Pot at {pos}: {pot_text(mdp, state, pos, old_dynamics)}." for pos in mdp.get_pot_locations()]
    return "\n".join([header, *body, LEGEND, *chef_lines(state, viewer), *pots])


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
