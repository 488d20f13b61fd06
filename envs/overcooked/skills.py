"""High-level skills ("pick up onion", "put onion in pot", ...) over Overcooked-AI's motion planner.

A skill is a named goal: a set of terrain tiles to face and interact with. Each tick the chef
re-targets from the current state (an onion on a counter may be gone), asks Overcooked-AI's
``MotionPlanner`` for the cheapest plan to face one of those tiles, and takes its first action;
when it faces a target it interacts and the skill is done. ``fill dish with soup`` waits at a
cooking pot until the soup is ready. The planner ignores the other chef, so a chef whose move was
blocked takes a random unblocking step (as Overcooked-AI's GreedyHumanModel does), drawn from the
game's seeded generator.

The planner is cached per layout in ``~/.cache/agentgym/overcooked`` (never in site-packages),
keyed by a hash of the terrain, so a new process loads it instead of recomputing it.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

from agentgym.envs.overcooked.compat import Action, Direction, MotionPlanner

WAIT = "wait"
ITEMS = ("onion", "tomato", "dish")
SKILLS = ("pick up onion", "pick up tomato", "pick up dish", "pick up soup", "put onion in pot",
          "put tomato in pot", "start cooking", "fill dish with soup", "deliver soup",
          "place onion on counter", "place tomato on counter", "place dish on counter", "place soup on counter",
          WAIT)
CACHE_DIR = Path(os.environ.get("AGENTGYM_CACHE", Path.home() / ".cache" / "agentgym")) / "overcooked"


def motion_planner(mdp) -> MotionPlanner:
    """Overcooked-AI's MotionPlanner for this layout, with every counter allowed as a goal; cached on disk."""
    key = hashlib.sha1(repr((mdp.terrain_mtx, mdp.start_player_positions)).encode()).hexdigest()[:16]
    path = CACHE_DIR / f"{mdp.layout_name}_{key}_mp.pkl"
    try:
        with path.open("rb") as f:
            planner = pickle.load(f)
        planner.mdp = mdp
        return planner
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError):
        pass
    planner = MotionPlanner(mdp, counter_goals=mdp.get_counter_locations())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with tmp.open("wb") as f:
            pickle.dump(planner, f, pickle.HIGHEST_PROTOCOL)
        tmp.replace(path)   # atomic: concurrent workers never read half a file
    except OSError:
        pass                # a read-only home only costs a recompute next time
    return planner


class SkillPlanner:
    """Targets, admissibility and the next primitive action of each skill, for one layout.

    ``old_dynamics``: pots start cooking by themselves when full, so there is no "start cooking".
    """

    def __init__(self, mdp, old_dynamics: bool = False):
        self.mdp = mdp
        self.mp = motion_planner(mdp)
        self.old_dynamics = old_dynamics

    # -- what a skill aims at ------------------------------------------------------------------------
    def targets(self, skill: str, state, chef: int) -> list[tuple[int, int]]:
        """Tiles the chef can reach and interact with to do ``skill`` now ([] = impossible now)."""
        mdp, player = self.mdp, state.players[chef]
        held = player.held_object.name if player.held_object else None
        pots = mdp.get_pot_states(state)
        counters = mdp.get_counter_objects_dict(state)
        words = skill.split()
        if skill == WAIT:
            return [player.position]
        if skill.startswith("pick up ") and held is None:
            item = words[2]
            dispensers = {"onion": mdp.get_onion_dispenser_locations, "tomato": mdp.get_tomato_dispenser_locations,
                          "dish": mdp.get_dish_dispenser_locations}.get(item, list)()
            # a dispenser when one is reachable, else an item someone left on a counter (never both:
            # a chef must not pick back up the onion it just handed over)
            return self.reachable(dispensers, player) or self.reachable(counters.get(item, []), player)
        if skill in ("put onion in pot", "put tomato in pot") and held == words[1]:
            fillable = pots["empty"] + mdp.get_partially_full_pots(pots)
            return self.reachable(fillable, player)
        if skill == "start cooking" and held is None and not self.old_dynamics:
            return self.reachable(mdp.get_partially_full_pots(pots) + mdp.get_full_but_not_cooking_pots(pots), player)
        if skill == "fill dish with soup" and held == "dish":
            return self.reachable(pots["ready"] + pots["cooking"], player)
        if skill == "deliver soup" and held == "soup":
            return self.reachable(mdp.get_serving_locations(), player)
        if skill.startswith("place ") and skill.endswith(" on counter") and held == words[1]:
            empty = self.reachable(mdp.get_empty_counter_locations(state), player)
            partner = state.players[1 - chef]
            shared = [c for c in empty if self.reachable([c], partner)]
            return shared or empty   # hand over where the partner can take it, when possible
        return []

    def reachable(self, tiles, player) -> list[tuple[int, int]]:
        return [t for t in tiles if self.goals(t, player)]

    def goals(self, tile, player) -> list:
        """(position, orientation) pairs from which ``player`` can interact with ``tile``."""
        return [g for g in self.mp.motion_goals_for_pos.get(tile, [])
                if self.mp.is_valid_motion_start_goal_pair(player.pos_and_or, g)]

    def admissible(self, state, chef: int) -> list[str]:
        """Skills possible for this chef now, in a fixed order; "wait" is always possible."""
        return [s for s in SKILLS if s == WAIT or self.targets(s, state, chef)]

    # -- how a skill moves the chef ------------------------------------------------------------------
    def next_action(self, skill: str, state, chef: int):
        """(engine action, done): the chef's next primitive for this skill; done once it interacts."""
        player = state.players[chef]
        if skill == WAIT:
            return Action.STAY, True
        tiles = self.targets(skill, state, chef)
        if not tiles:
            return Action.STAY, True
        facing = Action.move_in_direction(player.position, player.orientation)
        if facing in tiles:
            if skill == "fill dish with soup" and not self.mdp.soup_ready_at_location(state, facing):
                return Action.STAY, False           # wait at the pot until the soup is ready
            return Action.INTERACT, True
        best = None
        for tile in tiles:
            for goal in self.goals(tile, player):
                plan, _, cost = self.mp.get_plan(player.pos_and_or, goal)
                if best is None or cost < best[0]:
                    best = (cost, plan)
        if best is None or not best[1]:
            return Action.STAY, True
        return best[1][0], False

    def detour(self, skill: str, state, chef: int):
        """The moves of a shortest path to the skill's target that walks around the other chef
        (breadth-first search over floor tiles with the partner's tile closed); None if there is none."""
        player, other = state.players[chef], state.players[1 - chef].position
        goals = {g[0] for t in self.targets(skill, state, chef) for g in self.goals(t, player)} - {other}
        if not goals:
            return None
        start = player.position
        path = {start: []}
        frontier = [start]
        while frontier:
            nxt = []
            for pos in frontier:
                if pos in goals:
                    return path[pos] or None
                for move in Direction.ALL_DIRECTIONS:
                    new = Action.move_in_direction(pos, move)
                    if new not in path and new != other and self.mdp.get_terrain_type_at_pos(new) == " ":
                        path[new] = path[pos] + [move]
                        nxt.append(new)
            frontier = nxt
        return None

    def unblock(self, state, chef: int, rng) -> tuple:
        """A move that changes the chef's position if the other chef stays (GreedyHumanModel's unstuck rule)."""
        options = []
        for move in Direction.ALL_DIRECTIONS:
            joint = [Action.STAY, Action.STAY]
            joint[chef] = move
            new_state, _ = self.mdp.get_state_transition(state, joint)
            if new_state.players[chef].position != state.players[chef].position:
                options.append(move)
        return options[rng.randrange(len(options))] if options else Action.STAY
