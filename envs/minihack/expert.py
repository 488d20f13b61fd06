"""A scripted MiniHack expert: breadth-first search over the map the agent has seen.

Priorities, re-planned every turn from the current observation: reach a visible staircase
down; on KeyRoom pick up the key, stand orthogonally next to the locked door and apply the
key; on Corridor kick doors the game reported locked; otherwise walk to the nearest
unvisited cell that borders unexplored space. NetHack's rules that matter here: no diagonal
moves into or out of a door square, closed doors open when walked into orthogonally, water,
lava and boulders block. River (boulders into water) is handled by a small push planner
that tries one row at a time; it is best effort, see docs/envs/minihack.md.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from nle import nethack

from agentgym.envs.minihack import render as R

STEPS = list(R.DIRECTIONS.items())           # (word, (dx, dy))
WORD = {v: k for k, v in R.DIRECTIONS.items()}
WALKABLE = frozenset({R.FLOOR, R.DARK_FLOOR, R.DOORWAY, R.UP_STAIR, R.DOWN_STAIR}) | R.OPEN_DOORS | R.CORRIDORS
DOORS = R.OPEN_DOORS | R.CLOSED_DOORS
SEARCHES = 8          # searches per wall square before looking elsewhere (each finds a hidden spot w.p. ~1/7)


class Grid:
    """What each seen cell is, for path finding."""

    def __init__(self, obs: dict, locked: set, agent: tuple[int, int], under: int = -1):
        glyphs = obs["glyphs"]
        self.cm = R.cmap_grid(glyphs)
        self.h, self.w = glyphs.shape
        self.boulder = obs["chars"] == ord("`")
        is_obj = (glyphs >= nethack.GLYPH_OBJ_OFF) & (glyphs < nethack.GLYPH_OBJ_OFF + nethack.NUM_OBJECTS)
        self.item = is_obj & ~self.boulder
        is_mon = glyphs < nethack.GLYPH_OBJ_OFF       # monsters, pets, invisible: stand on floor
        self.walk = np.isin(self.cm, list(WALKABLE)) | self.item | (is_mon & (self.cm == -1))
        self.walk &= ~self.boulder
        self.closed = np.isin(self.cm, list(R.CLOSED_DOORS))
        self.door = np.isin(self.cm, list(DOORS))
        self.unknown = (self.cm == R.STONE)
        self.locked = locked
        self.agent = agent
        ax, ay = agent                          # the agent hides its own square: use what was seen there before
        self.door[ay, ax] = int(R.cmap_grid(np.array([[under]]))[0, 0]) in DOORS

    def inside(self, x: int, y: int) -> bool:
        return 0 <= x < self.w and 0 <= y < self.h

    def can_step(self, x: int, y: int, dx: int, dy: int, extra: set = frozenset()) -> bool:
        nx, ny = x + dx, y + dy
        if not self.inside(nx, ny):
            return False
        if dx and dy and (self.door[ny, nx] or self.door[y, x]):
            return False                       # NetHack: no diagonal moves into or out of door squares
        return bool((nx, ny) in extra or self.walk[ny, nx]
                    or (self.closed[ny, nx] and (nx, ny) not in self.locked))

    def path(self, goals: set, blocked: set = frozenset()) -> list[str] | None:
        """Shortest list of direction words from the agent to any goal cell (goals may be unwalkable)."""
        start = self.agent
        if start in goals:
            return []
        prev = {start: None}
        q = deque([start])
        while q:
            x, y = q.popleft()
            for word, (dx, dy) in STEPS:
                n = (x + dx, y + dy)
                if n in prev or n in blocked or not self.can_step(x, y, dx, dy, extra=goals):
                    continue
                prev[n] = ((x, y), word)
                if n in goals:
                    out = []
                    while prev[n] is not None:
                        n, w = prev[n]
                        out.append(w)
                    return out[::-1]
                q.append(n)
        return None


class Expert:
    """Per-episode memory (visited cells, doors known to be locked) plus a re-planning policy."""

    def __init__(self):
        self.visited: set[tuple[int, int]] = set()
        self.locked: set[tuple[int, int]] = set()
        self.dead_ends_seen: set[tuple[int, int]] = set()
        self.searched: dict[tuple[int, int], int] = {}   # wall cell -> searches made next to it
        self.last_move: str | None = None
        self.last_pos: tuple[int, int] | None = None

    def act(self, env) -> str:
        obs = env._obs
        pos = env._pos()
        x, y = pos
        self.visited.add(pos)
        msg = R._text(obs["message"])
        if self.last_move in R.DIRECTIONS and "door is locked" in msg and self.last_pos == pos:
            dx, dy = R.DIRECTIONS[self.last_move]
            self.locked.add((x + dx, y + dy))
        locked = set(self.locked)
        if env._key_door:                       # KeyRoom: the inner room's door is locked until the key opens it
            cm = R.cmap_grid(obs["glyphs"])
            locked |= {(int(cx), int(cy)) for cy, cx in zip(*np.nonzero(np.isin(cm, list(R.CLOSED_DOORS))))}
        grid = Grid(obs, locked, pos, under=int(env._under[pos[1], pos[0]]))
        action = self._choose(env, grid, pos, msg)
        self.last_move, self.last_pos = action, pos
        return action

    def _choose(self, env, grid: Grid, pos, msg: str) -> str:
        admissible = env.admissible_actions()
        x, y = pos
        stairs = {(int(cx), int(cy)) for cy, cx in zip(*np.nonzero(grid.cm == R.DOWN_STAIR))}
        p = grid.path(stairs) if stairs else None
        if p:
            return p[0]

        if env._key_door:
            if env.has_key() is None:
                if "pick up" in admissible:
                    return "pick up"
                items = {(int(cx), int(cy)) for cy, cx in zip(*np.nonzero(grid.item))}
                p = grid.path(items) if items else None
                if p:
                    return p[0]
            else:
                if "apply key" in admissible:
                    return "apply key"
                beside = set()
                for cy, cx in zip(*np.nonzero(grid.closed)):
                    for word in ("north", "east", "south", "west"):
                        dx, dy = R.DIRECTIONS[word]
                        c = (int(cx) + dx, int(cy) + dy)
                        if grid.inside(*c) and grid.walk[c[1], c[0]]:
                            beside.add(c)
                p = grid.path(beside) if beside else None
                if p:
                    return p[0]

        for word in ("north", "east", "south", "west"):     # Corridor: kick doors known to be locked
            dx, dy = R.DIRECTIONS[word]
            if (x + dx, y + dy) in self.locked and f"kick {word}" in admissible:
                return f"kick {word}"

        if env.task.startswith("MiniHack-River"):
            move = self._river(grid, stairs)
            if move:
                return move

        p = self._explore(grid)
        if p:
            return p[0]
        if "search" in admissible:
            return self._search_walls(grid)
        return "north"

    def _search_walls(self, grid: Grid) -> str:
        """No way on in sight: a door or corridor is hidden. Search beside walls not yet searched."""
        x, y = grid.agent
        walls = np.isin(grid.cm, list(R.WALLS))
        dead_ends = set()
        for cy, cx in zip(*np.nonzero(np.isin(grid.cm, list(R.CORRIDORS)))):
            cx, cy = int(cx), int(cy)
            y0, y1, x0, x1 = max(cy - 1, 0), min(cy + 2, grid.h), max(cx - 1, 0), min(cx + 2, grid.w)
            if grid.walk[y0:y1, x0:x1].sum() <= 2:       # itself plus at most one way on
                dead_ends.add((cx, cy))
        if (x, y) in self.dead_ends_seen:
            dead_ends.add((x, y))
        self.dead_ends_seen |= dead_ends
        hidden_ok = walls.copy()                          # squares a hidden door or corridor may hide in
        for cx, cy in dead_ends:
            y0, y1, x0, x1 = max(cy - 1, 0), min(cy + 2, grid.h), max(cx - 1, 0), min(cx + 2, grid.w)
            hidden_ok[y0:y1, x0:x1] |= grid.unknown[y0:y1, x0:x1]
        walls = hidden_ok
        spots_first = {c for c in dead_ends if any(
            self.searched.get((c[0] + dx, c[1] + dy), 0) < SEARCHES for dx in (-1, 0, 1) for dy in (-1, 0, 1)
            if grid.inside(c[0] + dx, c[1] + dy) and walls[c[1] + dy, c[0] + dx])}

        def uncovered(cx, cy):
            return sum(1 for dx in (-1, 0, 1) for dy in (-1, 0, 1)
                       if grid.inside(cx + dx, cy + dy) and walls[cy + dy, cx + dx]
                       and self.searched.get((cx + dx, cy + dy), 0) < SEARCHES)

        if uncovered(x, y) and (not spots_first or (x, y) in spots_first):
            for dx in (-1, 0, 1):
                for dy in (-1, 0, 1):
                    c = (x + dx, y + dy)
                    self.searched[c] = self.searched.get(c, 0) + 1
            return "search"
        spots = spots_first or {(int(cx), int(cy)) for cy, cx in zip(*np.nonzero(grid.walk))
                                if uncovered(int(cx), int(cy))}
        p = grid.path(spots) if spots else None
        return p[0] if p else "search"

    def _explore(self, grid: Grid) -> list[str] | None:
        frontier = set()
        ys, xs = np.nonzero(grid.walk | (grid.closed & ~self._locked_mask(grid)))
        for cy, cx in zip(ys.tolist(), xs.tolist()):
            if (cx, cy) in self.visited:
                continue
            y0, y1, x0, x1 = max(cy - 1, 0), min(cy + 2, grid.h), max(cx - 1, 0), min(cx + 2, grid.w)
            if grid.unknown[y0:y1, x0:x1].any():
                frontier.add((cx, cy))
        return grid.path(frontier) if frontier else None

    @staticmethod
    def _locked_mask(grid: Grid) -> np.ndarray:
        m = np.zeros_like(grid.closed)
        for cx, cy in grid.locked:
            if grid.inside(cx, cy):
                m[cy, cx] = True
        return m

    def _river(self, grid: Grid, stairs: set) -> str | None:
        """Push boulders east into the river, one row at a time, until a crossing exists."""
        water = np.isin(grid.cm, [R.WATER, R.POOL])
        ys, xs = np.nonzero(water)
        if len(xs) == 0:
            return None
        best = None
        for row in sorted(set(ys.tolist())):
            wx = [int(c) for c in xs[ys == row]]
            first = min(wx)                              # the westmost water cell on this row
            # boulders on this row west of the water, pushed east from their west side
            for bx in range(first - 1, -1, -1):
                if not grid.boulder[row, bx]:
                    continue
                between = all(grid.walk[row, c] and not grid.boulder[row, c] for c in range(bx + 1, first))
                stand = (bx - 1, row)
                if not between or not grid.inside(*stand) or not grid.walk[row, bx - 1]:
                    break
                if grid.agent == stand:
                    return "east"
                p = grid.path({stand})
                if p is not None and (best is None or len(p) < len(best)):
                    best = p
                break
        return best[0] if best else None
