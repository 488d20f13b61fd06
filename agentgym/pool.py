"""EnvPool: N env slots over M workers, stepped asynchronously.

    pool = make_pool("MiniHack-Room-5x5-v0", num_envs=8, num_workers=2)   # Ray actors
    pool.reset(0, seed=123); pool.step(1, "north")        # queue commands; never blocks
    for r in pool.wait():                                  # send them; results that are ready (>= 1)
        r.slot, r.kind, r.obs, r.reward, r.terminated, r.truncated, r.info, r.error

Snapshots (``agentgym.snapshot``; MCTS and Agent-R search over the pool, not in-process):

    pool.snapshot(slot)                   # result .state: a picklable snapshot of that slot's env
    pool.restore(slot, state)             # any slot (any worker) returns to it: obs and info as they were
    pool.step_from(slot, state, action)   # restore + step + snapshot in one command; .state is the new one

A snapshot is native (the env's get_state/set_state) or a replay of the episode from its reset seed,
checked against the recorded observations (``StepResult.replayed`` counts the env steps it cost);
an env that does not replay identically fails the command with a ``SnapshotError`` message.

Slot ``s`` lives on worker ``s % M``. A worker (``EnvWorker``) holds its slots' envs and runs
one command at a time; a Ray worker is an actor, so the M workers step in parallel. ``wait``
sends each actor all its queued commands in one remote call.

Every command gets exactly one ``StepResult``. A command that fails gets one with ``error``
set, and the caller must ``reset`` that slot before stepping it again:
- an env exception: the worker rebuilds that env (both backends);
- a command slower than ``step_timeout_s`` or a dead worker process (Ray only): the pool kills
  and recreates the actor, fails every command in flight on it, and fails the next ``step`` of
  its other slots (their envs are gone). ``pool.metrics`` counts ``restarts`` and ``timeouts``.
The collector (agentgym.rollout) drops the broken episode and re-runs it from the same seeds.

Leaks (Ray only): with ``recycle_after`` (episodes) or ``max_worker_rss_mb`` (the RSS each actor
reports with every result) an actor past its limit is replaced by a fresh one before it starts its
next episode, once none of its slots is mid-episode; ``pool.metrics["recycles"]`` counts them.
"""

from __future__ import annotations

import copy
import logging
import os
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

import psutil

from agentgym.core import CapabilityError, capabilities_of
from agentgym.registry import EnvSpec, make, register, registry, spec as get_spec
from agentgym.snapshot import Snapshots

BACKENDS = ("ray", "local")


@dataclass
class StepResult:
    slot: int
    kind: str                          # "reset" | "step" | "snapshot" | "restore"
    obs: str = ""
    reward: float = 0.0
    terminated: bool = False
    truncated: bool = False
    info: dict[str, Any] = field(default_factory=dict)
    error: str | None = None           # set when the command failed; the slot needs a reset
    state: Any = None                  # snapshot and step_from: the env's snapshot after the command
    replayed: int = 0                  # env steps a restore replayed (replay snapshots; 0 for native ones)


class EnvPool(Protocol):
    env_id: str
    num_envs: int
    metrics: dict[str, int]

    def reset(self, slot: int, seed: int | None) -> None: ...
    def step(self, slot: int, action: str) -> None: ...
    def wait(self, timeout: float | None = None) -> list[StepResult]: ...
    def snapshot(self, slot: int) -> None: ...
    def restore(self, slot: int, state: Any) -> None: ...
    def step_from(self, slot: int, state: Any, action: str) -> None: ...
    def system_prompt(self) -> str | None: ...
    def close(self) -> None: ...


class EnvWorker:
    """Holds the envs of some slots and runs commands on them. Runs in-process (LocalEnvPool)
    or as a Ray actor (RayEnvPool); never raises from reset/step: failures become results."""

    def __init__(self, env_spec: EnvSpec, slots: list[int], env_kwargs: dict | None = None,
                 max_turns: int | None = None, with_expert: bool = False):
        import agentgym  # noqa: F401  (in an actor process: registers the built-in families)

        if env_spec.id not in registry():   # an id registered by the driver only (a test, a script)
            register(env_spec.id, env_spec.entry_point, max_turns=env_spec.max_turns,
                     description=env_spec.description, family=env_spec.family, **env_spec.kwargs)
        self.env_id, self.env_kwargs, self.max_turns = env_spec.id, dict(env_kwargs or {}), max_turns
        self.with_expert = with_expert
        self.envs = {s: self._make() for s in slots}

    def _make(self):
        return Snapshots(make(self.env_id, max_turns=self.max_turns, **self.env_kwargs))

    def describe(self) -> dict[str, Any]:
        env = next(iter(self.envs.values())).unwrapped
        return {"system_prompt": getattr(env, "system_prompt", None), "pid": os.getpid(), "rss_mb": _rss_mb()}

    def reset(self, slot: int, seed: int | None) -> StepResult:
        try:
            obs, info = self.envs[slot].reset(seed=seed)
            return StepResult(slot, "reset", obs, 0.0, False, False, self._expert(slot, info, False))
        except Exception:
            return self._failed(slot, "reset")

    def step(self, slot: int, action: str) -> StepResult:
        try:
            obs, reward, terminated, truncated, info = self.envs[slot].step(action)
            info = self._expert(slot, info, terminated or truncated)
            return StepResult(slot, "step", obs, float(reward), bool(terminated), bool(truncated), info)
        except Exception:
            return self._failed(slot, "step")

    def snapshot(self, slot: int, _: Any = None) -> StepResult:
        try:
            state = self.envs[slot].get_state()
            return StepResult(slot, "snapshot", state["obs"], 0.0, False, False, state["info"], state=state)
        except Exception:
            return self._failed(slot, "snapshot")

    def restore(self, slot: int, state: Any) -> StepResult:
        try:
            env = self.envs[slot]
            obs, info = env.set_state(state)
            return StepResult(slot, "restore", obs, 0.0, False, False, self._expert(slot, info, state["done"]),
                              replayed=env.replayed)
        except Exception:
            return self._failed(slot, "restore")

    def step_from(self, slot: int, arg: tuple[Any, str]) -> StepResult:
        """Restore ``state``, take ``action``, snapshot the outcome (no snapshot once the episode ended)."""
        state, action = arg
        try:
            env = self.envs[slot]
            env.set_state(state)
            replayed = env.replayed
            obs, reward, terminated, truncated, info = env.step(action)
            done = terminated or truncated
            return StepResult(slot, "step", obs, float(reward), bool(terminated), bool(truncated),
                              self._expert(slot, info, done), state=None if done else env.get_state(), replayed=replayed)
        except Exception:
            return self._failed(slot, "step")

    def run(self, commands: list[tuple[str, int, Any]]) -> tuple[list[StepResult], float]:
        """Several commands in one call: ("reset", slot, seed), ("step", slot, action), ("snapshot", slot, None),
        ("restore", slot, state) or ("step_from", slot, (state, action)). Returns their results and
        this process's RSS in MiB afterwards (the pool recycles an actor that grows past its limit)."""
        return [getattr(self, kind)(slot, arg) for kind, slot, arg in commands], _rss_mb()

    def _expert(self, slot: int, info: dict, done: bool) -> dict:
        if self.with_expert and not done:   # no expert action after the episode ended
            info = {**info, "expert_action": self.envs[slot].unwrapped.expert_action()}
        return info

    def _failed(self, slot: int, kind: str) -> StepResult:
        error = f"{self.env_id} slot {slot}: {kind} raised:\n{traceback.format_exc(limit=8)}"
        try:
            self.envs[slot].close()
        except Exception:
            pass
        self.envs[slot] = self._make()
        return StepResult(slot, kind, error=error)

    def close(self) -> None:
        for env in self.envs.values():
            try:
                env.close()
            except Exception:
                pass


def _rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def _resolve(env_id: str, with_expert: bool) -> EnvSpec:
    s = get_spec(env_id)
    if with_expert and "expert_action" not in capabilities_of(s.load()):
        raise CapabilityError(
            f"with_expert=True needs env.unwrapped.expert_action(), but {s.id} ({s.entry_point}) does not "
            f"implement it. Use an env with a scripted expert or set with_expert=False.")
    return s


def _slots_of(worker: int, num_envs: int, num_workers: int) -> list[int]:
    return list(range(worker, num_envs, num_workers))


class LocalEnvPool:
    """The pool in-process: a command runs when submitted, its result is ready at the next
    ``wait``. Env exceptions become error results; step timeouts are NOT enforced and an env
    that kills its process kills the caller (use the Ray pool for those)."""

    def __init__(self, env_id: str, num_envs: int, *, env_kwargs: dict | None = None,
                 max_turns: int | None = None, with_expert: bool = False):
        s = _resolve(env_id, with_expert)
        self.env_id, self.num_envs = s.id, num_envs
        self.worker = EnvWorker(s, list(range(num_envs)), env_kwargs, max_turns, with_expert)
        self._system_prompt = self.worker.describe()["system_prompt"]
        self.metrics = {"restarts": 0, "timeouts": 0, "errors": 0, "recycles": 0}
        self._ready: list[StepResult] = []
        self._busy: set[int] = set()

    def reset(self, slot: int, seed: int | None) -> None:
        self._submit(slot)
        self._done(self.worker.reset(slot, seed))

    def step(self, slot: int, action: str) -> None:
        self._submit(slot)
        self._done(self.worker.step(slot, action))

    def snapshot(self, slot: int) -> None:
        self._submit(slot)
        self._done(self.worker.snapshot(slot))

    def restore(self, slot: int, state: Any) -> None:
        self._submit(slot)
        self._done(self.worker.restore(slot, state))

    def step_from(self, slot: int, state: Any, action: str) -> None:
        self._submit(slot)
        self._done(self.worker.step_from(slot, (state, action)))

    def _submit(self, slot: int) -> None:
        _check_slot(slot, self.num_envs, self._busy)
        self._busy.add(slot)

    def _done(self, r: StepResult) -> None:
        # Ray results are copies; copy here too, so an env that reuses its info dict cannot
        # change what the caller already holds.
        r.info = copy.deepcopy(r.info)
        self.metrics["errors"] += r.error is not None
        self._ready.append(r)

    def wait(self, timeout: float | None = None) -> list[StepResult]:
        out, self._ready = self._ready, []
        self._busy.difference_update(r.slot for r in out)
        return out

    def system_prompt(self) -> str | None:
        return self._system_prompt

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()
            self.worker = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _check_slot(slot: int, num_envs: int, busy: set[int]) -> None:
    if not 0 <= slot < num_envs:
        raise IndexError(f"slot {slot} is out of range: the pool has {num_envs} slots (0..{num_envs - 1}).")
    if slot in busy:
        raise RuntimeError(f"slot {slot} already has a command in flight; wait() for its result first.")


def _ray_init_kwargs(address: str | None) -> dict[str, Any]:
    """Join ``address`` (or $RAY_ADDRESS) when given; otherwise start Ray in this process."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING, "ignore_reinit_error": True}
    if address:
        return {"address": address, **quiet}
    # "local": a new in-process instance, even when `ray start` left a cluster on this machine
    return {"address": "local", "num_cpus": os.cpu_count(), "include_dashboard": False, **quiet}


def init_ray(address: str | None = None, worker_niceness: int | None = None) -> None:
    """Start or join Ray once. Keeps an existing ``ray.init``; ``address`` or $RAY_ADDRESS joins
    a running cluster ("auto", "host:6379", "ray://host:10001"). Takes ~5 s here (2 cores).
    ``worker_niceness`` (rollout.worker_niceness): the nice level of the workers Ray starts in this
    process; Ray's own default is 15, which starves env actors next to a busy driver."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if worker_niceness is not None:
        os.environ.setdefault("RAY_worker_niceness", str(int(worker_niceness)))
    import ray

    if not ray.is_initialized():
        ray.init(**_ray_init_kwargs(address))


START_ATTEMPTS = 5            # starts of one env actor in a row before the pool gives up
START_BACKOFF_S = 0.5
STARTS = ("reset", "restore", "step_from")    # commands that define a slot's whole state (a new episode or search node)


class RayEnvPool:
    """The pool over Ray actors. ``reset``/``step`` queue commands; ``wait`` sends each actor its
    queued commands as ONE remote call (a remote call costs ~1 ms here, more than a MiniHack
    step), collects what is ready, enforces the timeout and restarts actors that died or hung.
    A batch of k commands on one actor may take k * ``step_timeout_s`` (measured from when the
    actor could start it); past that the actor counts as hung. ``recycle_after`` (episodes) and
    ``max_worker_rss_mb`` replace an actor between episodes (None: never)."""

    def __init__(self, env_id: str, num_envs: int, *, num_workers: int | None = None,
                 env_kwargs: dict | None = None, max_turns: int | None = None, step_timeout_s: float = 60.0,
                 with_expert: bool = False, ray_address: str | None = None, worker_cpus: float = 0.25,
                 worker_niceness: int | None = 0, recycle_after: int | None = None,
                 max_worker_rss_mb: float | None = None, startup_timeout_s: float = 120.0):
        import ray

        init_ray(ray_address, worker_niceness)
        self._ray = ray
        s = _resolve(env_id, with_expert)
        self.env_id, self.num_envs = s.id, num_envs
        self.num_workers = min(num_workers or os.cpu_count() or 1, num_envs)
        self.step_timeout_s, self.startup_timeout_s = float(step_timeout_s), float(startup_timeout_s)
        self.worker_cpus = worker_cpus
        self.recycle_after, self.max_worker_rss_mb = recycle_after, max_worker_rss_mb
        self.metrics = {"restarts": 0, "timeouts": 0, "errors": 0, "recycles": 0}
        self.rss_mb = [0.0] * self.num_workers          # the last RSS each actor reported
        self._episodes = [0] * self.num_workers         # episodes started on each actor since it started
        # max_restarts=0: the pool restarts actors itself, so it knows which envs were lost.
        self._actor_class = ray.remote(EnvWorker).options(num_cpus=worker_cpus, max_restarts=0)
        self._args = (s, env_kwargs, max_turns, with_expert)
        self.actors = [self._new_actor(w) for w in range(self.num_workers)]
        self._system_prompt = self._await_ready(list(range(self.num_workers)))[0]["system_prompt"]
        self._unsent: list[list[tuple]] = [[] for _ in range(self.num_workers)]   # (kind, slot, arg)
        self._queues: list[deque] = [deque() for _ in range(self.num_workers)]   # (ref, commands), in order
        self._head_since = [0.0] * self.num_workers   # when the actor could start its oldest batch
        self._ref_worker: dict[Any, int] = {}
        self._busy: set[int] = set()
        self._lost: set[int] = set()                  # slots whose env died with its actor
        self._live: set[int] = set()                  # slots mid-episode (an actor is never recycled under one)
        self._ready: list[StepResult] = []

    # -- actors -----------------------------------------------------------------------------
    def _new_actor(self, w: int):
        s, env_kwargs, max_turns, with_expert = self._args
        return self._actor_class.remote(s, _slots_of(w, self.num_envs, self.num_workers), env_kwargs,
                                        max_turns, with_expert)

    def _await_ready(self, workers: list[int]) -> list[dict]:
        """Wait until these workers' actors describe themselves. An actor whose process dies while it
        starts (killed, out of memory, a crashing native library) is started again after a backoff
        (``START_BACKOFF_S * 2**n``); only a worker that fails ``START_ATTEMPTS`` times in a row raises."""
        ray, infos, last = self._ray, {}, {}
        pending = list(workers)
        for attempt in range(START_ATTEMPTS):
            refs = {w: self.actors[w].describe.remote() for w in pending}
            failed = []
            for w, ref in refs.items():
                try:
                    infos[w] = ray.get(ref, timeout=self.startup_timeout_s)
                except ray.exceptions.GetTimeoutError:
                    self.close()
                    raise TimeoutError(
                        f"EnvPool: env worker {w} for {self.env_id} did not start within "
                        f"{self.startup_timeout_s:.0f}s. The cluster may lack CPUs for it (each asks for "
                        f"{self.worker_cpus} CPU): lower num_workers or worker_cpus, or add nodes.") from None
                except Exception as e:
                    # The constructor raised: it would raise again. Anything else (the process was killed,
                    # ran out of memory, crashed) is retried.
                    if getattr(e, "actor_init_failed", False):
                        self.close()
                        raise RuntimeError(f"EnvPool: env workers for {self.env_id} failed to start: {e}") from e
                    last[w] = e
                    failed.append(w)
            if not failed:
                for w in workers:
                    self.rss_mb[w], self._episodes[w] = infos[w]["rss_mb"], 0
                return [infos[w] for w in workers]
            self.metrics["start_retries"] = self.metrics.get("start_retries", 0) + len(failed)
            time.sleep(START_BACKOFF_S * 2 ** attempt)
            for w in failed:
                self.actors[w] = self._new_actor(w)
            pending = failed
        self.close()
        w = pending[0]
        error = str(last[w]).strip().splitlines()[-1] if str(last[w]).strip() else type(last[w]).__name__
        raise RuntimeError(
            f"EnvPool: env worker {w} for {self.env_id} died while starting {START_ATTEMPTS} times in a row "
            f"(backoff {START_BACKOFF_S:g} s, doubling). Last error: {error}. The env's constructor may crash "
            f"(try `agentgym check-env {self.env_id}`), or the machine may be out of memory (fewer "
            f"rollout.num_workers or rollout.num_envs); a run killed here resumes with --resume auto.")

    def _restart(self, w: int, why: str) -> list[StepResult]:
        """Kill worker ``w``, fail its commands in flight, mark its other slots lost, start a new one."""
        self._ray.kill(self.actors[w], no_restart=True)
        failed = []
        for ref, commands in self._queues[w]:
            self._ref_worker.pop(ref, None)
            failed += [StepResult(slot, kind, error=f"{self.env_id} slot {slot}: {why}") for kind, slot, _ in commands]
        self._queues[w].clear()
        self._lost.update(set(_slots_of(w, self.num_envs, self.num_workers)) - {r.slot for r in failed})
        self._live.difference_update(_slots_of(w, self.num_envs, self.num_workers))
        self.actors[w] = self._new_actor(w)
        self._await_ready([w])        # a slow start must not count against the next step's timeout
        self.metrics["restarts"] += 1
        return failed

    def _recycle_due(self, w: int, commands: list[tuple]) -> bool:
        """Worker ``w`` is past a limit, about to start an episode, and none of its slots is mid-episode
        (nothing in flight; every live slot is being reset or restored by ``commands``)."""
        over = ((self.recycle_after is not None and self._episodes[w] >= self.recycle_after)
                or (self.max_worker_rss_mb is not None and self.rss_mb[w] > self.max_worker_rss_mb))
        starting = {slot for kind, slot, _ in commands if kind in STARTS}
        return (over and bool(starting) and not self._queues[w]
                and not (self._live & set(_slots_of(w, self.num_envs, self.num_workers))) - starting)

    def _recycle(self, w: int, commands: list[tuple]) -> None:
        """Replace worker ``w`` by a fresh actor (it leaked); slots not started by ``commands`` lose their env."""
        self._ray.kill(self.actors[w], no_restart=True)
        self._lost.update(set(_slots_of(w, self.num_envs, self.num_workers)) - {slot for _, slot, _ in commands})
        self.actors[w] = self._new_actor(w)
        self._await_ready([w])
        self.metrics["recycles"] += 1

    # -- commands ---------------------------------------------------------------------------
    def reset(self, slot: int, seed: int | None) -> None:
        _check_slot(slot, self.num_envs, self._busy)
        self._lost.discard(slot)      # a reset on the new actor's fresh env is fine
        self._queue(slot, "reset", seed)

    def step(self, slot: int, action: str) -> None:
        self._queue_on_env(slot, "step", action)

    def snapshot(self, slot: int) -> None:
        self._queue_on_env(slot, "snapshot", None)

    def restore(self, slot: int, state: Any) -> None:
        _check_slot(slot, self.num_envs, self._busy)
        self._lost.discard(slot)      # a snapshot defines the whole state, like a reset
        self._queue(slot, "restore", state)

    def step_from(self, slot: int, state: Any, action: str) -> None:
        _check_slot(slot, self.num_envs, self._busy)
        self._lost.discard(slot)
        self._queue(slot, "step_from", (state, action))

    def _queue_on_env(self, slot: int, kind: str, arg: Any) -> None:
        """A command that needs the slot's env as it was (step, snapshot): an error result if it was lost."""
        _check_slot(slot, self.num_envs, self._busy)
        if slot in self._lost:
            self._busy.add(slot)
            self._ready.append(StepResult(slot, kind, error=(
                f"{self.env_id} slot {slot}: its env was lost when worker {slot % self.num_workers} was "
                f"restarted; reset the slot.")))
            return
        self._queue(slot, kind, arg)

    def _queue(self, slot: int, kind: str, arg: Any) -> None:
        self._unsent[slot % self.num_workers].append((kind, slot, arg))
        self._busy.add(slot)

    def _send(self) -> None:
        for w, commands in enumerate(self._unsent):
            if commands:
                if self._recycle_due(w, commands):
                    self._recycle(w, commands)
                self._episodes[w] += sum(kind in ("reset", "restore") for kind, _, _ in commands)
                ref = self.actors[w].run.remote(commands)
                if not self._queues[w]:
                    self._head_since[w] = time.monotonic()
                self._queues[w].append((ref, commands))
                self._ref_worker[ref] = w
                self._unsent[w] = []

    def _hang_at(self, w: int) -> float:
        return self._head_since[w] + self.step_timeout_s * len(self._queues[w][0][1])

    def wait(self, timeout: float | None = None) -> list[StepResult]:
        """All results ready now; blocks until at least one (or ``timeout`` s) while any is in flight."""
        ray = self._ray
        self._send()
        out, self._ready = self._ready, []
        deadline = float("inf") if timeout is None else time.monotonic() + timeout
        while self._ref_worker:
            busy = [w for w in range(self.num_workers) if self._queues[w]]
            block = 0.0 if out else max(0.0, min(deadline, *(self._hang_at(w) for w in busy)) - time.monotonic())
            refs = list(self._ref_worker)
            ready, _ = ray.wait(refs, num_returns=1, timeout=block)
            if ready:
                ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
            out += self._collect(set(ready))
            now = time.monotonic()
            for w in range(self.num_workers):
                if self._queues[w] and now > self._hang_at(w):
                    self.metrics["timeouts"] += 1
                    out += self._restart(w, f"no result within step_timeout_s={self.step_timeout_s:g}s "
                                            f"(worker {w} killed and restarted)")
            if out or now >= deadline:
                break
        self._busy.difference_update(r.slot for r in out)
        self.metrics["errors"] += sum(r.error is not None for r in out)
        for r in out:
            if r.error is not None or r.terminated or r.truncated:
                self._live.discard(r.slot)            # the episode ended, or broke (the slot needs a reset)
            elif r.kind != "snapshot":
                self._live.add(r.slot)
        return out

    def _collect(self, ready: set) -> list[StepResult]:
        ray, out = self._ray, []
        for w in range(self.num_workers):
            queue = self._queues[w]
            while queue and queue[0][0] in ready:     # an actor finishes its batches in order
                ref, commands = queue.popleft()
                self._ref_worker.pop(ref)
                self._head_since[w] = time.monotonic()
                try:
                    results, self.rss_mb[w] = ray.get(ref)
                    out += results
                except ray.exceptions.RayActorError as e:
                    out += [StepResult(slot, kind, error=f"{self.env_id} slot {slot}: worker {w} died: {e}")
                            for kind, slot, _ in commands]
                    out += self._restart(w, f"worker {w} died while running another slot's command")
                    break
                except Exception as e:                 # e.g. a result Ray could not serialize
                    out += [StepResult(slot, kind, error=f"{self.env_id} slot {slot}: {kind} failed: {e}")
                            for kind, slot, _ in commands]
        return out

    def system_prompt(self) -> str | None:
        return self._system_prompt

    def close(self) -> None:
        for actor in getattr(self, "actors", []):
            try:
                self._ray.kill(actor, no_restart=True)
            except Exception:
                pass
        self.actors = []
        self._ref_worker = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def make_pool(env_id: str, num_envs: int, *, backend: str = "ray", num_workers: int | None = None,
              env_kwargs: dict | None = None, max_turns: int | None = None, step_timeout_s: float = 60.0,
              with_expert: bool = False, ray_address: str | None = None, **ray_options: Any) -> EnvPool:
    """Build a pool of ``num_envs`` envs of ``env_id``. ``backend="ray"`` spreads them over
    ``num_workers`` actors (default: one per CPU, at most one per env); ``"local"`` runs them in
    this process (tests, debugging). Extra ``ray_options``: ``worker_cpus``, ``worker_niceness``,
    ``recycle_after``, ``max_worker_rss_mb``, ``startup_timeout_s`` (the local pool has no actors to recycle)."""
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}.")
    if num_workers is not None and num_workers < 1:
        raise ValueError(f"num_workers must be >= 1 (or None for one per CPU), got {num_workers}.")
    if backend == "local":
        return LocalEnvPool(env_id, num_envs, env_kwargs=env_kwargs, max_turns=max_turns, with_expert=with_expert)
    if backend == "ray":
        return RayEnvPool(env_id, num_envs, num_workers=num_workers, env_kwargs=env_kwargs, max_turns=max_turns,
                          step_timeout_s=step_timeout_s, with_expert=with_expert, ray_address=ray_address,
                          **ray_options)
    raise ValueError(f"Unknown pool backend {backend!r}: choose one of {', '.join(BACKENDS)}.")


def pool_from_config(cfg: Any, *, with_expert: bool = False, num_envs: int | None = None,
                     for_eval: bool = False) -> EnvPool:
    """The pool a run's config describes (``env`` and ``rollout`` sections); one place for the
    trainer, the evaluator and the benchmarks. ``for_eval``: with ``eval.env_kwargs`` merged over
    ``env.kwargs`` (a held-out split, say)."""
    from omegaconf import OmegaConf

    r = cfg.rollout
    env_kwargs = OmegaConf.to_container(cfg.env.kwargs)
    eval_kwargs = cfg.eval.get("env_kwargs") if for_eval else None
    if eval_kwargs:
        env_kwargs.update(OmegaConf.to_container(eval_kwargs))
    return make_pool(str(cfg.env.id), int(num_envs or r.num_envs), backend=str(r.pool),
                     num_workers=int(r.num_workers), env_kwargs=env_kwargs,
                     max_turns=cfg.env.max_turns, step_timeout_s=float(r.step_timeout_s), with_expert=with_expert,
                     ray_address=r.ray_address, worker_cpus=float(r.worker_cpus),
                     worker_niceness=r.get("worker_niceness"), recycle_after=r.get("recycle_after"),
                     max_worker_rss_mb=r.get("max_worker_rss_mb"))
