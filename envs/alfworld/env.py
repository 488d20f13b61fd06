"""ALFWorld's text env (TextWorld + PDDL) under the agentgym contract.

The engine is exactly the chain ALFWorld's ``AlfredTWEnv.init_env`` builds for each batch slot:
textworld's ``GenericEnvironment`` (which picks the PDDL backend for ``.tw-pddl`` games) wrapped in
``AlfredDemangler`` (object names like "desk 1"), ``AlfredInfos`` (the game file), ``AlfredExpert``
(the handcoded expert's next action, or Fast Downward's plan) and ``Filter``, with the same info
requests (``won``, ``admissible_commands``, ``extra.gamefile``, ``extra.expert_plan``).
Observations, the "Your task is to: ..." line, admissible commands and "Nothing happens." come
from the engine unchanged; only the "-= Welcome to TextWorld, ALFRED! =-" banner is dropped from
the first observation, as ReAct and verl-agent do. Success is the game's own ``won``.

Differences from stepping textworld directly, all for speed and robustness: a command that is not
admissible is answered "Nothing happens." without calling the engine (the engine would answer the
same and leave the state unchanged, after recomputing every admissible command), a
``think: ...`` line answers "OK." without advancing the game, as in ReAct, and Fast Downward's
PDDL->SAS translation is memoized per process so a reset of a recent game skips it.
"""

from __future__ import annotations

import functools
import random
import re
import sys
import warnings
from typing import Any

from agentgym.core import TextEnv
from agentgym.envs.alfworld import games
from agentgym.envs.alfworld import generate as gen

BANNER = "-= Welcome to TextWorld, ALFRED! =-"
TASK_RE = re.compile(r"Your task is to: (.*)")
PREFIX = re.compile(r"^\s*(?:>|action\s*:|act\s*:)\s*", re.I)
MAX_ACTION_CHARS = 500

SYSTEM_PROMPT = (
    "Interact with a household to solve a task. You are in a room with furniture and objects. Each turn you "
    "see what happened and the valid actions (go to, open, close, take X from Y, move X to Y, heat, cool, "
    "clean, use, examine, look, inventory). Answer with exactly one valid action, e.g. 'go to countertop 1'. "
    "You may also answer 'think: <your reasoning>' to plan; the environment replies 'OK.' and nothing "
    "changes. Search the likely receptacles for the object, then do what the task asks.")


class AlfWorldEnv(TextEnv):
    """One ALFWorld game per episode; the reset seed picks the game of the split (``game_index``).

    ``split``: train | eval_in_distribution | eval_out_of_distribution. ``data_dir``: an ALFWorld
    data folder (default $ALFWORLD_DATA); for ``train`` without real training games the embedded
    generated games are used. ``task_types``: ids 1-6 or names to keep. ``expert_type``: handcoded
    (ALFWorld's scripted expert), planner (Fast Downward, replanned each step; slow) or none.
    ``fallback_split``: when ``split``'s games are missing (no data folder), warn with the
    missing-data message and play this split instead of raising; the config's evaluation
    (``eval.env_kwargs``) uses it so an offline training run still evaluates, on training games.
    """

    system_prompt = SYSTEM_PROMPT

    def __init__(self, split: str = "train", data_dir: str | None = None, task_types: Any = None,
                 expert_type: str = "handcoded", fallback_split: str | None = None, render_mode: str | None = None):
        if expert_type not in ("handcoded", "planner", "none"):
            raise ValueError(f"expert_type must be 'handcoded', 'planner' or 'none', got {expert_type!r}.")
        self.render_mode = render_mode
        self.split, self.data_dir, self.expert_type = split, data_dir, expert_type
        self.task_types = games.parse_task_types(task_types)
        try:
            self.games = self._games(split)
        except FileNotFoundError as e:
            if not fallback_split or fallback_split == split:
                raise
            warnings.warn(f"ALFWorld split {split!r} is unavailable, playing {fallback_split!r} games instead "
                          f"(fallback_split). {e}", stacklevel=2)
            self.split = fallback_split
            self.games = self._games(fallback_split)
        self._tw = None
        self._loaded: str | None = None
        self._random = random.Random(0)     # the handcoded expert's tie-breaking draws
        self._state: dict[str, Any] = {}
        self._done = True
        self.gamefile = ""
        self.task_type = ""
        self.instruction = ""

    # --- games ---------------------------------------------------------------------------
    def _games(self, split: str) -> list[str | dict]:
        """Game files, or embedded problem rows (built into the cache on first use)."""
        if split == "train":
            root = games.data_root(self.data_dir, required=False)
            if root is not None and (root / "json_2.1.1" / "train").is_dir():
                return games.collect_games("train", self.data_dir, self.task_types)
            rows = games.embedded_problems(self.task_types)
            if not rows:
                raise ValueError(f"no embedded ALFWorld games of task types {self.task_types}.")
            return rows
        return games.collect_games(split, self.data_dir, self.task_types)

    def _engine(self):
        if self._tw is None:
            _memoize_pddl_translation()
            import textworld
            from textworld.envs.wrappers import Filter, GenericEnvironment
            from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredInfos
            extras = ["gamefile"] + (["expert_plan"] if self.expert_type != "none" else [])
            env = GenericEnvironment(textworld.EnvInfos(won=True, admissible_commands=True, extras=extras))
            wrappers = [AlfredDemangler(shuffle=False), AlfredInfos]
            if self.expert_type != "none":
                wrappers.append(_safe_expert_wrapper()(expert_type=self.expert_type))
            for wrapper in wrappers + [Filter]:
                env = wrapper(env)
            self._tw = env
        return self._tw

    def _call(self, fn, *args):
        """Run an engine call with the expert's ``random`` draws on this env's own seeded state."""
        saved = random.getstate()
        random.setstate(self._random.getstate())
        try:
            return fn(*args)
        finally:
            self._random.setstate(random.getstate())
            random.setstate(saved)

    def game_index(self, seed: int) -> int:
        """Index into ``self.games`` of the game reset seed ``seed`` plays: position ``seed mod n`` of
        a fixed shuffle of the sorted list (``random.Random(n)``), so any run of consecutive seeds (the
        trainer's eval seeds ``eval.seed + i``) mixes the task types instead of taking them in
        folder order; seeds 0..n-1 still play every game once."""
        n = len(self.games)
        return random.Random(n).sample(range(n), n)[int(seed) % n]

    def _load(self, index: int) -> tuple[str, Any]:
        """Load and reset the game of seed ``index``; a corrupt game is skipped (to the next seed's
        game) with a warning naming it."""
        engine = self._engine()
        for attempt in range(min(len(self.games), 20)):
            entry = self.games[self.game_index(index + attempt)]
            try:
                path = games.embedded_game(entry) if isinstance(entry, dict) else entry
                if path != self._loaded:
                    self._loaded = None
                    engine.load(path)
                    self._loaded = path
                return path, self._call(engine.reset)
            except Exception as e:   # unreadable JSON, broken PDDL, planner failure
                self._loaded = None
                warnings.warn(f"ALFWorld: skipping corrupt game file {entry if isinstance(entry, str) else entry.get('scene_key')} "
                              f"({type(e).__name__}: {str(e)[:200]})", stacklevel=3)
        raise RuntimeError(f"ALFWorld: {min(len(self.games), 20)} game files in a row failed to load; check the data folder.")

    # --- gym API ---------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[str, dict]:
        super().reset(seed=seed)
        self._random = random.Random(seed)
        index = int(seed) if seed is not None else int(self.np_random.integers(2**31))
        self.gamefile, (obs, infos) = self._load(index)
        self._state = infos
        self._done = False
        self.task_type = _task_type(self.gamefile)
        match = TASK_RE.search(obs)
        self.instruction = match.group(1).strip() if match else ""
        obs = obs.replace(BANNER, "", 1).lstrip("\n")
        return obs, self._info(invalid=False, won=False)

    def step(self, action: str) -> tuple[str, float, bool, bool, dict]:
        if self._tw is None or self._loaded is None:
            raise RuntimeError("call reset() before step().")
        command = parse_action(action)
        if self._done:
            return "The episode is over; call reset().", 0.0, True, False, self._info(invalid=True, won=bool(self._state.get("won")))
        if command is not None and command.startswith("think:"):
            return "OK.", 0.0, False, False, self._info(invalid=False, won=False)
        if command is None or command not in self._state["admissible_commands"]:
            return "Nothing happens.", 0.0, False, False, self._info(invalid=True, won=False)
        obs, score, done, infos = self._call(self._tw.step, command)
        self._state = infos
        won = bool(infos["won"])
        self._done = bool(done) or won
        return obs, float(won), self._done, False, self._info(invalid=False, won=won)

    def _info(self, *, invalid: bool, won: bool) -> dict[str, Any]:
        info = {"instruction": self.instruction, "admissible_actions": list(self._state.get("admissible_commands", [])),
                "invalid_action": invalid, "task_type": self.task_type, "gamefile": self.gamefile, "split": self.split,
                "won": won,
                "success": won}
        return info

    # --- capabilities ----------------------------------------------------------------------
    def expert_action(self) -> str:
        """ALFWorld's expert for the current state (``extra.expert_plan[0]``; "look" when it has none)."""
        if self.expert_type == "none":
            raise RuntimeError("this ALFWorld env was built with expert_type='none'; use 'handcoded' or 'planner'.")
        plan = self._state.get("extra.expert_plan") or ["look"]
        return plan[0]

    def render(self) -> str | None:
        text = f"[{self.task_type}] {self.instruction}\n" + "\n".join(self._state.get("admissible_commands", []))
        if self.render_mode == "human":
            print(text)
            return None
        return text

    def close(self) -> None:
        if self._tw is not None:
            self._tw.close()
            self._tw, self._loaded = None, None


def _safe_expert_wrapper():
    """ALFWorld's ``AlfredExpert`` whose failures (its handcoded expert knows no receptacles for some
    object types and raises) give the plan ["look"] instead of crashing the game step."""
    from alfworld.agents.environment.alfred_tw_env import AlfredExpert

    class SafeAlfredExpert(AlfredExpert):
        def _gather_infos(self):
            try:
                super()._gather_infos()
            except Exception:
                self.state["extra.expert_plan"] = ["look"]

    return SafeAlfredExpert


def _memoize_pddl_translation() -> None:
    """Cache Fast Downward's PDDL->SAS translation per process.

    textworld's ``PddlState`` runs ``fast_downward.pddl2sas`` twice (plain and optimized) on every
    ``load`` and again on every ``reset`` of the same game: about 1-2 s of pure-Python translation
    that always gives the same result for the same (domain, problem). Memoizing it turns a reset of a
    recently played game into reloading the SAS text into the C planner, with identical observations.
    The translation also overwrites ``sys.argv``; the cached version restores it.
    """
    import fast_downward

    if getattr(fast_downward.pddl2sas, "agentgym_cached", False):
        return
    translate = fast_downward.pddl2sas

    @functools.lru_cache(maxsize=64)
    def cached(domain: str, problem: str, optimize: bool):
        argv = list(sys.argv)
        try:
            return translate(domain, problem, optimize=optimize)
        finally:
            sys.argv[:] = argv

    def pddl2sas(domain: str, problem: str, verbose: bool = False, optimize=False):
        return cached(domain, problem, bool(optimize))

    pddl2sas.agentgym_cached = True
    pddl2sas.cache_info = cached.cache_info
    fast_downward.pddl2sas = pddl2sas


def _task_type(gamefile: str) -> str:
    name = gamefile.replace("\\", "/").split("/")[-3] if gamefile.count("/") >= 2 else ""
    task = name.split("-")[0]
    return task if task in gen.TASK_TYPES.values() else "unknown"


def parse_action(action: Any) -> str | None:
    """A ReAct-style answer to an ALFWorld command: first non-empty line, "> " / "Action:" dropped,
    whitespace collapsed, lower case. None when it cannot be a command (not text, empty, too long)."""
    if not isinstance(action, str) or len(action) > MAX_ACTION_CHARS:
        return None
    lines = [line for line in action.strip().splitlines() if line.strip()]
    if not lines:
        return None
    text = " ".join(PREFIX.sub("", lines[0]).split()).lower()
    return text or None
