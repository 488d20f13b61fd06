"""Tiny text envs for tests: a number-guessing game and a faulty variant that sleeps, raises or
kills its process on a chosen step.

Importing this module registers them (family ``agentgym-test``); nothing else imports it, so
they never show up in a normal registry. Faults are off by default (``at_step=None``), so a
registry-wide check-env over these ids is harmless.

    AgentgymTest-Guess-v0   GuessNumberEnv: find a secret in [0, n); admissible actions, expert
    AgentgymTest-Echo-v0    EchoEnv: open action space, no expert
    AgentgymTest-Meet-v0    MeetGame seen from one seat (agentgym.multiagent.SeatEnv): two agents
                            announce, then walk to meet; the multi-agent conventions' test game
    AgentgymTest-Faulty-v0  FaultyGuessEnv: the same game, plus fault="sleep"|"raise"|"exit"
                            on step ``at_step``; with ``marker`` (a file path) the fault fires
                            only while the file does not exist (it is created first), so a
                            re-run of the episode goes through.
    AgentgymTest-Replay-v0  ReplayGuessEnv: the guessing game without get_state/set_state, so
                            snapshots replay it (``agentgym.snapshot``)
    AgentgymTest-Noisy-v0   NoisyGuessEnv: like Replay, but every reset is different whatever the
                            seed, so replay snapshots must refuse it
    AgentgymTest-Leaky-v0   LeakyGuessEnv: the guessing game leaking ``leak_mb_per_episode`` MiB of
                            its process's memory on every reset (actor recycling's test)

``ActorKiller`` is the fault drill's helper: a thread that SIGKILLs env actors at random moments.

Every other toy env implements get_state/set_state (native snapshots).
"""

from __future__ import annotations

import math
import os
import random
import signal
import threading
import time
from pathlib import Path

import psutil

from agentgym.core import TextEnv
from agentgym.multiagent import SeatEnv
from agentgym.registry import register


class GuessNumberEnv(TextEnv):
    """Guess a secret integer in [0, n). Wrong guesses answer "higher" or "lower"; reward 1 on a hit."""

    system_prompt = ("You play a number guessing game. After each guess you learn whether the secret is "
                     "higher or lower. Answer with exactly one action from the list.")

    def __init__(self, n: int = 8):
        if n < 2:
            raise ValueError(f"GuessNumberEnv needs n >= 2 numbers to guess from, got n={n}.")
        self.n = n
        self.actions = [f"guess {k}" for k in range(n)]
        self.secret = 0
        self.lo, self.hi = 0, n - 1      # what the feedback so far allows; the expert bisects it
        self.steps = 0

    def _info(self, **extra) -> dict:
        return {"instruction": f"Find the secret number between 0 and {self.n - 1}.",
                "admissible_actions": list(self.actions), **extra}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.secret = int(self.np_random.integers(self.n))
        self.lo, self.hi, self.steps = 0, self.n - 1, 0
        return f"I picked a number between 0 and {self.n - 1}. Guess it.", self._info()

    def step(self, action: str):
        self.steps += 1
        words = str(action).strip().lower().split()
        if len(words) != 2 or words[0] != "guess" or not words[1].isdigit() or int(words[1]) >= self.n:
            obs = f"Invalid action {action!r}. Write 'guess K' with K between 0 and {self.n - 1}."
            return obs, 0.0, False, False, self._info(invalid_action=True)
        k = int(words[1])
        if k == self.secret:
            return "Correct!", 1.0, True, False, self._info(invalid_action=False, success=True)
        if k < self.secret:
            self.lo = max(self.lo, k + 1)
        else:
            self.hi = min(self.hi, k - 1)
        obs = f"{k} is wrong. The secret is {'higher' if k < self.secret else 'lower'}."
        return obs, 0.0, False, False, self._info(invalid_action=False, success=False)

    def expert_action(self) -> str:
        return f"guess {(self.lo + self.hi) // 2}"

    def get_state(self) -> dict:
        return {"secret": self.secret, "lo": self.lo, "hi": self.hi, "steps": self.steps}

    def set_state(self, state: dict) -> None:
        self.secret, self.lo, self.hi, self.steps = state["secret"], state["lo"], state["hi"], state["steps"]


class FaultyGuessEnv(GuessNumberEnv):
    """The guessing game with a fault on step ``at_step`` (1-based, counted within an episode).

    fault: "sleep" (for ``sleep_s`` seconds), "raise" (RuntimeError) or "exit" (``os._exit(3)``:
    the process dies, as when an engine segfaults). With ``marker`` set, the fault fires only
    if that file does not exist yet, and creates it first: the first run breaks, re-runs pass.
    ``crash_on_start``: a counter file; the first ``start_crashes`` constructions kill their process
    (an actor that dies while it starts or restarts). ``step_delay_s``: every step takes that long, as
    a real engine's does, so the fault drill's kills land mid-episode. ``fault_seeds``: the fault
    fires only in episodes reset with one of these seeds (empty: in every episode).
    """

    def __init__(self, n: int = 8, fault: str = "exit", at_step: int | None = None,
                 marker: str | None = None, sleep_s: float = 30.0, crash_on_start: str | None = None,
                 start_crashes: int = 0, step_delay_s: float = 0.0, fault_seeds: tuple = ()):
        super().__init__(n)
        self.fault_seeds, self.seed_now = tuple(fault_seeds), None
        if fault not in ("sleep", "raise", "exit"):
            raise ValueError(f"fault must be 'sleep', 'raise' or 'exit', got {fault!r}.")
        self.fault, self.at_step, self.marker, self.sleep_s = fault, at_step, marker, sleep_s
        self.step_delay_s = step_delay_s
        if crash_on_start is not None:          # the process dies while building the env, start_crashes times
            path = Path(crash_on_start)          # (a counter file shared by every process that builds one)
            count = int(path.read_text() or 0) if path.exists() else 0
            if count < start_crashes:
                path.write_text(str(count + 1))
                os._exit(4)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self.seed_now = seed
        return super().reset(seed=seed, options=options)

    def step(self, action: str):
        armed = not self.fault_seeds or self.seed_now in self.fault_seeds
        if armed and self.at_step is not None and self.steps + 1 == self.at_step and self._arm():
            if self.fault == "sleep":
                time.sleep(self.sleep_s)
            elif self.fault == "raise":
                raise RuntimeError(f"FaultyGuessEnv: injected error on step {self.at_step}")
            else:
                os._exit(3)
        time.sleep(self.step_delay_s)
        return super().step(action)

    def _arm(self) -> bool:
        if self.marker is None:
            return True
        path = Path(self.marker)
        try:
            with path.open("x"):        # atomic create: exactly one env fires the fault
                return True
        except FileExistsError:
            return False


class ReplayGuessEnv(GuessNumberEnv):
    """The guessing game without the snapshot capability (``None`` hides the inherited methods)."""

    get_state = set_state = None


class NoisyGuessEnv(ReplayGuessEnv):
    """Not deterministic under its seed: the reset observation counts the resets of every such env."""

    resets = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        NoisyGuessEnv.resets += 1
        obs, info = super().reset(seed=seed, options=options)
        return f"Round {NoisyGuessEnv.resets}. {obs}", info


class LeakyGuessEnv(GuessNumberEnv):
    """The guessing game that leaks ``leak_mb_per_episode`` MiB on every reset. The memory is held by
    the class, so rebuilding the env does not free it; only a new process (a recycled actor) does."""

    leaked: list[bytearray] = []

    def __init__(self, n: int = 8, leak_mb_per_episode: float = 0.0):
        super().__init__(n)
        self.leak_mb_per_episode = leak_mb_per_episode

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if self.leak_mb_per_episode:   # written, not just allocated, so it counts in the RSS
            LeakyGuessEnv.leaked.append(bytearray(b"\x01") * int(self.leak_mb_per_episode * 2**20))
        return super().reset(seed=seed, options=options)


class EchoEnv(TextEnv):
    """An open action space (no admissible actions, no expert): echoes the action; "stop" ends it."""

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        return "Say something, or 'stop'.", {"instruction": "Echo game."}

    def step(self, action: str):
        done = str(action).strip().lower() == "stop"
        return f"You said: {action}", float(done), done, False, {"success": done}

    def get_state(self) -> dict:
        return {}                        # nothing to remember between steps

    def set_state(self, state: dict) -> None:
        pass


class MeetGame:
    """A two-agent toy in PettingZoo's parallel API, following agentgym.multiagent's conventions.

    Two agents stand on cells 0..size-1 of a line; each knows only its own cell. Step 0: ``a``
    speaks (free text, turn-based), step 1: ``b`` speaks. Then both move at once (left, right,
    stay) until they share a cell: reward 1 each, success. Private fact per agent: its cell.
    """

    metadata = {"name": "meet_v0"}
    possible_agents = ["a", "b"]

    def __init__(self, size: int = 5, max_moves: int = 8):
        self.size, self.max_moves = size, max_moves
        self.agents: list[str] = []

    def observation_space(self, agent):
        from agentgym.core import TextSpace
        return TextSpace()

    def action_space(self, agent):
        from agentgym.core import TextSpace
        return TextSpace(max_length=4096)

    def _acting(self) -> list[str]:
        return [["a"], ["b"]][self.t] if self.t < 2 else list(self.agents)

    def _infos(self, invalid: dict[str, bool] | None = None, done: bool = False) -> dict[str, dict]:
        acting = [] if done else self._acting()
        infos = {}
        for a in self.possible_agents:
            info = {"acting": a in acting, "instruction": f"You are {a}. Meet the other agent on the line.",
                    "invalid_action": bool((invalid or {}).get(a, False))}
            if a in acting:
                info["admissible_actions"] = ["left", "right", "stay"] if self.t >= 2 else None
            if done:
                info["success"] = self.pos["a"] == self.pos["b"]
            infos[a] = {k: v for k, v in info.items() if v is not None}
        return infos

    def _obs(self, a: str) -> str:
        heard = " ".join(f"{b} said: {m!r}." for b, m in self.said)
        return f"You are on cell {self.pos[a]} of 0..{self.size - 1}. {heard}".strip()

    def reset(self, seed: int | None = None, options: dict | None = None):
        import random
        rng = random.Random(seed)
        self.agents = list(self.possible_agents)
        self.pos = {a: rng.randrange(self.size) for a in self.agents}
        self.t, self.said = 0, []
        return {a: self._obs(a) for a in self.agents}, self._infos()

    def step(self, actions: dict[str, str]):
        acting, invalid = self._acting(), {}
        if self.t < 2:
            speaker = acting[0]
            self.said.append((speaker, str(actions.get(speaker, ""))[:200]))
        else:
            for a in acting:
                move = str(actions.get(a, "")).strip().lower()
                invalid[a] = move not in ("left", "right", "stay")
                step = {"left": -1, "right": 1}.get(move, 0)
                self.pos[a] = min(max(self.pos[a] + step, 0), self.size - 1)
        self.t += 1
        met = self.t > 2 and self.pos["a"] == self.pos["b"]
        out_of_moves = self.t - 2 >= self.max_moves
        rewards = {a: float(met) for a in self.agents}
        terms = {a: met for a in self.agents}
        truncs = {a: out_of_moves and not met for a in self.agents}
        obs = {a: self._obs(a) for a in self.agents}
        infos = self._infos(invalid, done=met or out_of_moves)
        if met or out_of_moves:
            self.agents = []
        return obs, rewards, terms, truncs, infos

    def get_state(self) -> dict:
        return {"agents": list(self.agents), "pos": dict(self.pos), "t": self.t, "said": list(self.said)}

    def set_state(self, state: dict) -> None:
        self.agents, self.pos, self.t, self.said = (list(state["agents"]), dict(state["pos"]), state["t"],
                                                    list(state["said"]))

    def bot_action(self, agent: str) -> str:
        """Announce your cell; then both walk to the midpoint (rounded down) of the two cells."""
        if self.t < 2:
            return f"I am on cell {self.pos[agent]}."
        cells = [int(c) for _, m in self.said for c in m if c.isdigit()][:2]
        target = sum(cells) // 2 if len(cells) == 2 else self.size // 2
        return "stay" if target == self.pos[agent] else ("right" if target > self.pos[agent] else "left")


def train_one_iteration(cfg):
    """Set up a Trainer from ``cfg``, run iteration 0 and clean up; returns its IterState (tests)."""
    from agentgym.trainers.loop import Trainer

    trainer = Trainer(cfg)
    try:
        trainer.setup()
        return trainer.run_iteration(0)
    finally:
        trainer.cleanup()


def env_actor_processes() -> list[tuple[int, str]]:
    """(pid, title) of the env actors this process's Ray instance runs (its own descendants only, so
    another user's Ray on the machine is never touched). An actor still being built (a start or a
    restart) is titled ``ray::EnvWorker.__init__``."""
    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            title = " ".join(p.cmdline()).strip()
        except psutil.Error:
            continue
        if title.startswith("ray::EnvWorker"):
            out.append((p.pid, title))
    return out


class ActorKiller(threading.Thread):
    """The fault drill: SIGKILLs a random running env actor at random moments until ``kills`` kills have
    landed or ``stop()``. After a kill, with probability ``restart_kill_p``, it waits for the pool to start
    the replacement and kills that one too while it is still being built (a kill during a restart). Then
    it waits until a new actor runs (the pool recovered) and ``interval`` (uniform, seconds) more, enough
    for the re-run of a dropped episode: kills faster than that could fail one episode
    ``collect(max_retries=3)`` times in a row, which is meant to raise.
    ``stats``: attempted (a target was picked), landed (the signal reached a live process),
    during_restart (landed on an actor still in its constructor)."""

    def __init__(self, kills: int, interval: tuple[float, float] = (0.5, 1.5), restart_kill_p: float = 0.3,
                 seed: int = 0, recover_timeout_s: float = 60.0):
        super().__init__(daemon=True)
        self.kills, self.interval, self.restart_kill_p = kills, interval, restart_kill_p
        self.recover_timeout_s = recover_timeout_s
        self.rng = random.Random(seed)
        self.stats = {"attempted": 0, "landed": 0, "during_restart": 0}
        self._halt = threading.Event()
        self._seen: set[int] = set()

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def _kill(self, pid: int, title: str) -> None:
        self.stats["attempted"] += 1
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        self.stats["landed"] += 1
        self.stats["during_restart"] += title.endswith("__init__")

    def _await(self, found) -> tuple[int, str] | None:
        """The first new env actor ``found`` accepts, polling until the recover timeout."""
        deadline = time.monotonic() + self.recover_timeout_s
        while time.monotonic() < deadline and not self._halt.is_set():
            for actor in env_actor_processes():
                if actor[0] not in self._seen and found(actor[1]):
                    return actor
            time.sleep(0.01)
        return None

    def run(self) -> None:
        while self.stats["landed"] < self.kills and not self._halt.wait(self.rng.uniform(*self.interval)):
            running = [a for a in env_actor_processes() if not a[1].endswith("__init__")]
            if not running:
                continue
            self._seen.update(pid for pid, _ in env_actor_processes())
            self._kill(*self.rng.choice(running))
            if self.rng.random() < self.restart_kill_p and self.stats["landed"] < self.kills:
                starting = self._await(lambda title: title.endswith("__init__"))
                if starting:
                    self._seen.add(starting[0])
                    self._kill(*starting)
            self._await(lambda title: not title.endswith("__init__"))


# What faults may change: their own counters, and env_steps (it counts the steps of dropped episodes too).
FAULT_COUNTERS = ("dropped_episodes", "restarts", "timeouts", "recycles", "env_steps", "env_steps_total")


def comparable(rows: list[dict]) -> list[dict]:
    """Metric rows without wall-clock numbers and fault counters: what a run under fire must reproduce."""
    return [{k: v for k, v in row.items()
             if not (k.endswith("_s") or "rss" in k or k.rsplit("/", 1)[-1] in FAULT_COUNTERS)} for row in rows]


def metric_drift(a: list[dict], b: list[dict]) -> float:
    """The largest difference between ``comparable`` rows' floats, relative to the value (absolute below 1);
    inf when anything else differs (a key, a count, a row). A re-run episode shares the policy's batched
    forward pass with other episodes, which moves its log-probs by ~1e-7, never an action; through the
    updates that grows (measured: 1e-7 in iteration 1, 1-5e-5 after 30 iterations)."""
    a, b = comparable(a), comparable(b)
    if len(a) != len(b) or any(x.keys() != y.keys() for x, y in zip(a, b)):
        return math.inf
    drift = 0.0
    for x, y in zip(a, b):
        for k in x:
            if isinstance(x[k], float) and isinstance(y[k], float):
                drift = max(drift, abs(x[k] - y[k]) / max(1.0, abs(x[k]), abs(y[k])))
            elif x[k] != y[k]:
                return math.inf
    return drift


def same_metrics(a: list[dict], b: list[dict], tol: float = 1e-4) -> bool:
    return metric_drift(a, b) <= tol


def played(trajectories) -> list:
    """(seed, actions and rewards, success) of each trajectory: what faults must never change."""
    return [(t.seed, [(u.action, u.reward) for u in t.turns], t.success) for t in trajectories]


def saved_episodes(run_dir) -> list:
    """``played`` for the trajectories a training run saved (``trajectories/*.jsonl``), by file."""
    from agentgym.trajectory import load_jsonl

    return [(path.name, played(load_jsonl(path))) for path in sorted(Path(run_dir, "trajectories").glob("*.jsonl"))]


def drill_config(output_dir, run_name: str, iterations: int = 12):
    """The fault drill's training run: GRPO on the faulty guessing game (no fault armed; 50 ms steps),
    4 envs on 2 Ray actors, 16 episodes an iteration, one eval at the end on the same pool."""
    from agentgym.config import load_config

    cfg = load_config(env="AgentgymTest-Faulty-v0", algo="grpo", overrides=[
        "rollout.pool=ray", "rollout.num_envs=4", "rollout.num_workers=2", f"train.iterations={iterations}",
        "train.episodes_per_iter=16", "algo.group_size=4", "train.minibatch_size=64", "env.max_turns=4",
        "eval.every=0", "eval.episodes=8", "checkpoint.every=0", f"output_dir={output_dir}",
        f"run_name={run_name}", "logging.progress=false", "logging.tensorboard=false"])
    cfg.env.kwargs = {"n": 4, "step_delay_s": 0.05}
    return cfg


def under_fire(fn, killer: ActorKiller):
    """``fn()`` while ``killer`` runs; returns (its result, wall seconds)."""
    killer.start()
    t0 = time.perf_counter()
    try:
        return fn(), time.perf_counter() - t0
    finally:
        killer.stop()


def meet_seat_env(seat: str = "random", partner="bot", size: int = 5) -> SeatEnv:
    return SeatEnv(MeetGame(size=size), seat=seat, partner=partner)


register("AgentgymTest-Guess-v0", "agentgym.testing:GuessNumberEnv", max_turns=8, family="agentgym-test",
         description="Toy: guess a number (admissible actions, expert).")
register("AgentgymTest-Faulty-v0", "agentgym.testing:FaultyGuessEnv", max_turns=8, family="agentgym-test",
         description="Toy: the guessing game with an injected sleep/raise/exit (off by default).")
register("AgentgymTest-Meet-v0", "agentgym.testing:meet_seat_env", max_turns=12, family="agentgym-test",
         description="Toy multi-agent: two agents announce their cells, then walk to meet (one seat learns).")
register("AgentgymTest-Replay-v0", "agentgym.testing:ReplayGuessEnv", max_turns=8, family="agentgym-test",
         description="Toy: the guessing game without get_state/set_state (replay snapshots).")
register("AgentgymTest-Noisy-v0", "agentgym.testing:NoisyGuessEnv", max_turns=8, family="agentgym-test",
         description="Toy: the guessing game whose resets differ whatever the seed (replay snapshots refuse it).")
register("AgentgymTest-Leaky-v0", "agentgym.testing:LeakyGuessEnv", max_turns=8, family="agentgym-test",
         description="Toy: the guessing game leaking memory on every reset (off by default; actor recycling).")
register("AgentgymTest-Echo-v0", "agentgym.testing:EchoEnv", max_turns=4, family="agentgym-test",
         description="Toy: open action space, echoes the action; 'stop' ends the episode.")


class ProgressLineEnv(TextEnv):
    """A number line whose true per-step progress is known: the SPA estimator's test bed.

    The agent stands on a cell of 0..size-1 and must reach the goal cell. "left"/"right" move one
    cell, "wait" does nothing and "jump" is a decoy that the env refuses (``invalid_action=True``;
    free text is refused the same way). Reward 1 on reaching the goal (success), else 0.
    ``info["progress"]`` is the true progress of the step, (d_before - d_after) / d_start, so the
    progress of a successful episode sums to exactly its outcome 1. ``goal_side="right"`` puts the
    goal on the last cell (progress then depends on the action alone: the easy case for tests).
    """

    system_prompt = "Walk along a number line to the goal cell. Answer with exactly one action from the list."
    actions = ["left", "right", "wait", "jump"]

    def __init__(self, size: int = 7, goal_side: str = "any"):
        if size < 3:
            raise ValueError(f"ProgressLineEnv needs size >= 3 cells, got size={size}.")
        if goal_side not in ("any", "right"):
            raise ValueError(f"goal_side must be 'any' or 'right', got {goal_side!r}.")
        self.size, self.goal_side = size, goal_side
        self.pos = self.goal = self.start_dist = 0

    def _obs(self) -> str:
        return f"You are on cell {self.pos}. The goal is cell {self.goal}."

    def _info(self, **extra) -> dict:
        return {"instruction": f"Reach the goal cell on the line 0..{self.size - 1}.",
                "admissible_actions": list(self.actions), **extra}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if self.goal_side == "right":
            self.pos, self.goal = int(self.np_random.integers(self.size - 1)), self.size - 1
        else:
            self.pos, self.goal = (int(x) for x in self.np_random.choice(self.size, size=2, replace=False))
        self.start_dist = abs(self.goal - self.pos)
        return self._obs(), self._info()

    def step(self, action: str):
        move = {"left": -1, "right": 1, "wait": 0}.get(str(action).strip().lower())
        if move is None:
            obs = f"You cannot do {str(action)[:40]!r} here. {self._obs()}"
            return obs, 0.0, False, False, self._info(invalid_action=True, progress=0.0)
        before = abs(self.goal - self.pos)
        self.pos = min(max(self.pos + move, 0), self.size - 1)
        after = abs(self.goal - self.pos)
        progress = (before - after) / self.start_dist
        if after == 0:
            return "You reached the goal!", 1.0, True, False, self._info(invalid_action=False, progress=progress,
                                                                         success=True)
        return self._obs(), 0.0, False, False, self._info(invalid_action=False, progress=progress, success=False)

    def expert_action(self) -> str:
        return "right" if self.goal > self.pos else "left"

    def get_state(self) -> dict:
        return {"pos": self.pos, "goal": self.goal, "start_dist": self.start_dist}

    def set_state(self, state: dict) -> None:
        self.pos, self.goal, self.start_dist = state["pos"], state["goal"], state["start_dist"]


register("AgentgymTest-Progress-v0", "agentgym.testing:ProgressLineEnv", max_turns=8, family="agentgym-test",
         description="Toy: walk a number line to a goal; true per-step progress in info['progress'] (SPA tests).")
