"""The collector: runs episodes over an EnvPool with a batched policy and returns Trajectories.

    specs = episode_specs(num_episodes=32, group_size=4, seed=0, iteration=it)
    trajectories, metrics = collect(pool, policy, specs, SamplingParams(), history_turns=1)

- Continuous refill: when a slot's episode ends, the next pending episode starts there.
- One ``policy.act`` call per round for every slot waiting for an action (the policy batches).
- Reproducible: episode ``i`` resets with ``specs[i].seed`` and samples turn ``t`` with
  ``derive_seed(specs[i].sample_seed, t)``, so a trajectory does not depend on the pool size,
  the backend or the batching (given a policy that honours ``Request.seed``).
- Faults: an error result drops the partial episode and re-runs it from the same seeds (first
  in the queue); ``metrics["dropped_episodes"]`` counts it, ``Trajectory.info["dropped_restarts"]``
  says how often that episode was re-run. An episode that fails ``max_retries`` times with no
  episode finishing anywhere in between, or ``4 * max_retries`` times in all, raises: faults that
  hit a busy pool at random (other episodes still finish) do not stop a run, an episode that
  breaks every time does (or, with
  ``on_failure="record"``, end that episode with ``info["status"] = "error"`` and the last error).
- With ``timing=True``, ``Trajectory.info`` holds ``wall_s`` (the episode's time from its last start
  to its end) and ``status`` ("ok", "timeout" or "error"); off by default, so trajectories stay
  identical run to run. With ``episode_timeout_s``, an episode still running past it ends at its
  next decision with status "timeout". A leaderboard uses all three, so one stuck or broken
  episode costs that episode only.
- Trajectories come back in the order of ``episodes``.
- Starting from a snapshot: ``EpisodeSpec(seed, start=state, prefix=((obs, action), ...))`` restores
  ``state`` (``pool.restore``) instead of resetting, and the prompts see ``prefix`` as the episode's
  earlier turns (Agent-R's revision test: continue after a bad prefix). The trajectory holds the new
  turns only; ``Trajectory.info["start"]`` is "snapshot".
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from agentgym.policies.base import Policy, Request, SamplingParams
from agentgym.pool import EnvPool, StepResult
from agentgym.prompts import build_messages
from agentgym.trajectory import Trajectory, Turn

# Keys of the observation's info that describe the decision (what the policy saw; in a multi-agent
# view, which seat decided), so a Turn keeps them from before the action, not from the outcome.
DECISION_KEYS = ("admissible_actions", "expert_action", "agent")
# The pool's fault counters a collect reports as its own (restarted, hung and recycled actors).
POOL_FAULT_COUNTERS = ("restarts", "timeouts", "recycles")


def derive_seed(*parts: int) -> int:
    """A stable 31-bit seed from integers (same on every machine and Python run)."""
    digest = hashlib.blake2b(repr(tuple(int(p) for p in parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFFFFFF


@dataclass(frozen=True)
class EpisodeSpec:
    seed: int                         # env reset seed (the task)
    group: int = 0                    # episodes sharing an env seed share a group (GRPO)
    sample_seed: int | None = None    # policy sampling seed; None: derived from ``seed``
    start: Any = None                 # a pool snapshot to start from instead of reset(seed)
    prefix: tuple = ()                # (observation, action) pairs before ``start``, shown as history

    def sampling_seed(self) -> int:
        return derive_seed(self.seed) if self.sample_seed is None else self.sample_seed


def episode_specs(num_episodes: int, group_size: int = 1, seed: int = 0, iteration: int = 0) -> list[EpisodeSpec]:
    """``num_episodes // group_size`` groups; a group repeats one env seed with distinct sample
    seeds. Seeds derive from (seed, iteration, group), so iterations see fresh tasks."""
    if group_size < 1 or num_episodes < 1 or num_episodes % group_size:
        fix = max(1, num_episodes // max(group_size, 1)) * max(group_size, 1)
        raise ValueError(f"num_episodes ({num_episodes}) must be a positive multiple of group_size ({group_size}); "
                         f"e.g. set train.episodes_per_iter to {fix}.")
    specs = []
    for g in range(num_episodes // group_size):
        env_seed = derive_seed(seed, iteration, g)
        specs += [EpisodeSpec(env_seed, g, derive_seed(seed, iteration, g, i)) for i in range(group_size)]
    return specs


@dataclass
class _Running:
    """An episode in progress on a slot."""
    index: int
    spec: EpisodeSpec
    traj: Trajectory
    obs: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    history: list[tuple[str, str, Any]] = field(default_factory=list)   # (observation, action, seat)
    turn: Turn | None = None          # the turn whose action is in flight
    waiting: bool = False             # ready for the policy
    started: float = field(default_factory=time.perf_counter)


def collect(pool: EnvPool, policy: Policy, episodes: list[EpisodeSpec], sampling: SamplingParams | None = None, *,
            history_turns: int = 1, progress: Callable[[int, int, Trajectory], None] | bool | None = None,
            max_retries: int = 3, on_failure: str = "raise", episode_timeout_s: float | None = None,
            timing: bool = False) -> tuple[list[Trajectory], dict[str, float]]:
    """Run ``episodes`` to the end over ``pool`` with ``policy``; return (trajectories, metrics).

    ``progress``: a callable ``(done, total, trajectory)`` called per finished episode, or True
    for a tqdm bar. Metrics: episodes, env_steps, dropped_episodes, restarts, timeouts,
    mean_return, success_rate, mean_turns, steps_per_s, policy_time_s, env_time_s, wall_time_s, recycles.
    """
    sampling = sampling or SamplingParams()
    if on_failure not in ("raise", "record"):
        raise ValueError(f"on_failure must be 'raise' or 'record', got {on_failure!r}")
    if policy.mode not in ("choose", "generate"):
        raise ValueError(f"policy {policy.name!r} has unknown mode {policy.mode!r}: expected 'choose' or 'generate'.")
    bar = None
    if progress is True:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(episodes), desc=f"rollout {pool.env_id}", unit="ep")
        progress = lambda done, total, traj: bar.update(1)  # noqa: E731
    system_prompt = pool.system_prompt()
    faults0 = {k: pool.metrics.get(k, 0) for k in POOL_FAULT_COUNTERS}
    pending = deque(enumerate(episodes))
    results: list[Trajectory | None] = [None] * len(episodes)
    failures: dict[int, int] = {}     # episode index -> failed attempts (its dropped_restarts)
    streak: dict[int, int] = {}       # episode index -> failed attempts since an episode last finished
    running: dict[int, _Running] = {}
    in_flight: set[int] = set()       # slots with a command submitted to the pool
    stats = {"env_steps": 0, "dropped_episodes": 0, "policy_time_s": 0.0, "env_time_s": 0.0}
    start = time.perf_counter()

    def finish(ep: _Running, status: str, slot: int) -> None:
        if timing or status != "ok":
            ep.traj.info["status"] = status
        if timing:
            ep.traj.info["wall_s"] = time.perf_counter() - ep.started
        results[ep.index] = ep.traj
        running.pop(slot, None)
        if progress:
            progress(sum(t is not None for t in results), len(episodes), ep.traj)
        start_next(slot)

    def start_next(slot: int) -> None:
        if pending:
            index, spec = pending.popleft()
            traj = Trajectory(env_id=pool.env_id, seed=spec.seed, group=spec.group,
                              info={"dropped_restarts": failures.get(index, 0), "policy": policy.name,
                                    "sample_seed": spec.sampling_seed()})
            running[slot] = _Running(index, spec, traj, history=[(o, a, None) for o, a in spec.prefix])
            if spec.start is None:
                pool.reset(slot, spec.seed)
            else:
                traj.info["start"] = "snapshot"
                pool.restore(slot, spec.start)
            in_flight.add(slot)

    def on_result(r: StepResult) -> None:
        in_flight.discard(r.slot)
        ep = running.pop(r.slot)
        if r.error is not None:
            stats["dropped_episodes"] += 1
            failures[ep.index] = failures.get(ep.index, 0) + 1
            streak[ep.index] = streak.get(ep.index, 0) + 1
            if streak[ep.index] >= max_retries or failures[ep.index] >= 4 * max_retries:
                message = (f"Episode {ep.index} (env seed {ep.spec.seed}) of {pool.env_id} failed "
                           f"{failures[ep.index]} times ({streak[ep.index]} in a row with no episode finishing "
                           f"in between); last error:\n{r.error}")
                if on_failure == "raise":
                    raise RuntimeError(message)
                ep.traj.turns, ep.traj.success, ep.traj.info["error"] = [], False, message
                finish(ep, "error", r.slot)
                return
            pending.appendleft((ep.index, ep.spec))   # same seeds: an identical re-run
            start_next(r.slot)
            return
        running[r.slot] = ep
        if r.kind in ("reset", "restore"):
            ep.traj.instruction = str(r.info.get("instruction", ""))
        else:
            turn = ep.turn
            turn.reward, turn.terminated, turn.truncated = r.reward, r.terminated, r.truncated
            info = {k: v for k, v in r.info.items() if not (k == "instruction" and v == ep.traj.instruction)}
            for key in DECISION_KEYS:
                if key in ep.info:
                    info[key] = ep.info[key]
                else:
                    info.pop(key, None)
            turn.info = info
            ep.traj.turns.append(turn)
            ep.history.append((ep.obs, turn.action, turn.info.get("agent")))
            stats["env_steps"] += 1
            if r.terminated or r.truncated:
                ep.traj.success = bool(r.info.get("success", False))
                streak.clear()            # the pool makes progress: earlier faults were not this episode's
                finish(ep, "ok", r.slot)
                return
        ep.obs, ep.info, ep.turn, ep.waiting = r.obs, r.info, None, True
        if episode_timeout_s is not None and time.perf_counter() - ep.started > episode_timeout_s:
            finish(ep, "timeout", r.slot)

    try:
        for slot in range(pool.num_envs):
            start_next(slot)
        while running:
            slots = [s for s, ep in running.items() if ep.waiting]
            if slots:
                requests = []
                for s in slots:
                    ep = running[s]
                    actions = ep.info.get("admissible_actions")
                    # a seat (multi-agent self-play) sees only its own history and its own task
                    seat = ep.info.get("agent")
                    history = [(o, a) for o, a, s in ep.history if s == seat or s is None]   # None: a prefix
                    instruction = ep.info.get("instruction", ep.traj.instruction) if seat else ep.traj.instruction
                    messages = build_messages(instruction, history, ep.obs, actions, policy.mode,
                                              history_turns, system_prompt)
                    requests.append(Request(messages, actions, ep.info,
                                            seed=derive_seed(ep.spec.sampling_seed(), len(ep.traj.turns))))
                t0 = time.perf_counter()
                acts = policy.act(requests, sampling)
                stats["policy_time_s"] += time.perf_counter() - t0
                if len(acts) != len(requests):
                    raise RuntimeError(f"policy {policy.name!r} returned {len(acts)} actions for {len(requests)} "
                                       f"requests; Policy.act must return one Action per Request, in order.")
                for s, a in zip(slots, acts):
                    ep = running[s]
                    ep.waiting = False
                    ep.turn = Turn(observation=ep.obs, action=a.text, response=a.text, prompt_ids=list(a.prompt_ids),
                                   response_ids=list(a.response_ids), response_logprobs=list(a.response_logprobs),
                                   candidate_ids=a.candidate_ids, choice=a.choice, choice_logprob=a.choice_logprob)
                    pool.step(s, a.text)
                    in_flight.add(s)
            t0 = time.perf_counter()
            for r in pool.wait():
                on_result(r)
            stats["env_time_s"] += time.perf_counter() - t0
    except BaseException:
        while in_flight:   # leave the pool idle, so the caller can reuse or close it
            done = pool.wait()
            if not done:   # nothing left in the pool (results already taken by the failed round)
                break
            in_flight.difference_update(r.slot for r in done)
        raise
    finally:
        if bar is not None:
            bar.close()

    trajectories: list[Trajectory] = results  # type: ignore[assignment]   (all filled once running is empty)
    wall = time.perf_counter() - start
    n = max(len(trajectories), 1)
    metrics = {
        "episodes": len(trajectories),
        "env_steps": stats["env_steps"],
        "dropped_episodes": stats["dropped_episodes"],
        **{k: pool.metrics.get(k, 0) - faults0[k] for k in POOL_FAULT_COUNTERS},
        "mean_return": sum(t.episode_return for t in trajectories) / n,
        "success_rate": sum(t.success for t in trajectories) / n,
        "mean_turns": sum(t.num_turns for t in trajectories) / n,
        "steps_per_s": stats["env_steps"] / wall if wall > 0 else 0.0,
        "policy_time_s": stats["policy_time_s"],
        "env_time_s": stats["env_time_s"],
        "wall_time_s": wall,
    }
    return trajectories, metrics
