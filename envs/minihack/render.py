"""MiniHack observations as short, deterministic text, built from NLE's own fields.

A small LM reads this every turn, so it says only what matters for navigation: the game
message, the things in view with their direction and distance (nearest first), adjacent
walls, a few stats, and the inventory where the task uses items. Terrain is classified by
NetHack glyph (fast and exact); names come from NLE's ``screen_descriptions``.
"""

from __future__ import annotations

import numpy as np
from nle import nethack

# NetHack 3.6 cmap indices (display.h / drawing.c) that the text and the expert need.
STONE = 0
WALLS = frozenset(range(1, 12))        # vertical/horizontal walls and corners
DOORWAY, OPEN_DOORS, CLOSED_DOORS = 12, frozenset({13, 14}), frozenset({15, 16})
FLOOR, DARK_FLOOR, CORRIDORS = 19, 20, frozenset({21, 22})
UP_STAIR, DOWN_STAIR = 23, 24
POOL, LAVA, WATER = 32, 34, 41
PLAIN = frozenset({STONE, FLOOR, DARK_FLOOR}) | WALLS | CORRIDORS   # not worth naming

# (dx, dy) per compass word; NetHack's y grows to the south.
DIRECTIONS = {
    "north": (0, -1), "east": (1, 0), "south": (0, 1), "west": (-1, 0),
    "northeast": (1, -1), "southeast": (1, 1), "southwest": (-1, 1), "northwest": (-1, -1),
}
MAX_THINGS = 8


def cmap_grid(glyphs: np.ndarray) -> np.ndarray:
    """cmap index per cell, -1 where the glyph is a monster, object, trap or anything else."""
    cm = glyphs.astype(np.int64) - nethack.GLYPH_CMAP_OFF
    ok = (glyphs >= nethack.GLYPH_CMAP_OFF) & (glyphs < nethack.GLYPH_EXPLODE_OFF)
    return np.where(ok, cm, -1)


def offset_words(dx: int, dy: int) -> str:
    """'2 east, 1 south' for an offset from the agent; 'here' for none."""
    parts = []
    if dx:
        parts.append(f"{abs(dx)} {'east' if dx > 0 else 'west'}")
    if dy:
        parts.append(f"{abs(dy)} {'south' if dy > 0 else 'north'}")
    return ", ".join(parts) or "here"


def _text(arr: np.ndarray) -> str:
    return bytes(arr).split(b"\0", 1)[0].decode("latin-1").strip()


def inventory(obs: dict) -> list[tuple[str, str]]:
    """(letter, description) for each inventory slot."""
    out = []
    for letter, line in zip(obs["inv_letters"], obs["inv_strs"]):
        if letter == 0:
            break
        out.append((chr(int(letter)), _text(line)))
    return out


def describe(obs: dict, show_inventory: bool = False) -> str:
    """The observation text for one NLE observation dict."""
    x, y = int(obs["blstats"][nethack.NLE_BL_X]), int(obs["blstats"][nethack.NLE_BL_Y])
    glyphs = obs["glyphs"]
    cm = cmap_grid(glyphs)
    lines = []
    msg = _text(obs["message"])
    if msg:
        lines.append(f"Message: {msg}")

    # Things in view: everything that is not plain floor, wall, corridor or the agent.
    ys, xs = np.nonzero(~np.isin(cm, list(PLAIN)) & (glyphs != nethack.MAX_GLYPH))
    seen: dict[str, list[tuple[int, int, int]]] = {}
    for cy, cx in zip(ys.tolist(), xs.tolist()):
        if (cx, cy) == (x, y):
            continue
        name = _text(obs["screen_descriptions"][cy, cx]) or chr(int(obs["chars"][cy, cx]))
        dist = max(abs(cx - x), abs(cy - y))
        seen.setdefault(name, []).append((dist, cx - x, cy - y))
    things = []
    for name, where in seen.items():
        where.sort()
        dist, dx, dy = where[0]
        more = f" (nearest of {len(where)})" if len(where) > 1 else ""
        things.append((dist, dy, dx, f"{name}: {offset_words(dx, dy)}{more}"))
    things.sort()
    if things:
        lines.append("You see: " + "; ".join(t[-1] for t in things[:MAX_THINGS]) + ".")
    else:
        lines.append("You see nothing special.")

    walls = [d for d, (dx, dy) in DIRECTIONS.items()
             if 0 <= y + dy < cm.shape[0] and 0 <= x + dx < cm.shape[1] and cm[y + dy, x + dx] in WALLS]
    if walls:
        lines.append("Wall to the " + ", ".join(walls) + ".")

    b = obs["blstats"]
    lines.append(f"HP {int(b[nethack.NLE_BL_HP])}/{int(b[nethack.NLE_BL_HPMAX])}, "
                 f"depth {int(b[nethack.NLE_BL_DEPTH])}, turn {int(b[nethack.NLE_BL_TIME])}.")
    if show_inventory and "inv_letters" in obs:
        items = inventory(obs)
        lines.append("Inventory: " + ("; ".join(f"{k}) {s}" for k, s in items) if items else "empty") + ".")
    return "\n".join(lines)


def ascii_map(obs: dict) -> str:
    """The map rows that hold anything, as NetHack draws them (render_mode='ansi')."""
    rows = [bytes(r).decode("latin-1").rstrip() for r in obs["chars"]]
    kept = [r for r in rows if r]
    if not kept:
        return ""
    left = min(len(r) - len(r.lstrip()) for r in kept)
    return "\n".join(r[left:] for r in kept)
