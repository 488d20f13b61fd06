"""`agentgym data alfworld ...`: check a data folder, or generate training games offline.

    agentgym data alfworld --check [--data-dir DIR]        count the games of each split
    agentgym data alfworld --generate 50 --out DIR         50 new solvable games (ALFWorld layout)
        [--expert-check 50]      keep only games ALFWorld's handcoded expert wins within 50 steps
    agentgym data alfworld --expert-trajectories x.jsonl --episodes 20   expert demos for BC
        [--scenes FOLDER_OF_ALFRED_TRIALS] [--seed 0] [--task-types 1,3,6] [--jobs 2]

Generated games land in ``DIR/json_2.1.1/train/<task>-<obj>-None-<recep>-<scene>/gen_<id>/``,
so ``ALFWORLD_DATA=DIR`` (or ``env.kwargs.data_dir=DIR``) trains on them.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time
from pathlib import Path

from agentgym.envs.alfworld import games
from agentgym.envs.alfworld import generate as gen


def _plan_child(problem: gen.Problem, scene: str, conn) -> None:
    conn.send(gen.plan(gen.game_data(problem, scene)))


def _solve_all(items: list[tuple[gen.Problem, str]], jobs: int, timeout_s: float, wanted=lambda p: True):
    """Yield (problem, plan or None) in order, planning ``jobs`` at a time in child processes;
    a planner still running after ``timeout_s`` is stopped and counts as unsolved. A problem for
    which ``wanted(problem)`` is false when a planner slot frees up is skipped unplanned."""
    ctx = mp.get_context("fork")
    running: list = []
    todo = list(items)
    try:
        yield from _drain(ctx, running, todo, jobs, timeout_s, wanted)
    finally:
        for _, proc, _, _ in running:
            proc.terminate()


def _drain(ctx, running: list, todo: list, jobs: int, timeout_s: float, wanted):
    while todo or running:
        todo[:] = [item for item in todo if wanted(item[0])]
        while todo and len(running) < max(1, jobs):
            problem, scene = todo.pop(0)
            recv, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_plan_child, args=(problem, scene, send), daemon=True)
            proc.start()
            running.append((problem, proc, recv, time.monotonic()))
        if not running:
            return
        problem, proc, recv, start = running.pop(0)
        result = None
        if recv.poll(max(0.0, timeout_s - (time.monotonic() - start))):
            try:
                result = recv.recv()
            except EOFError:
                result = None
        proc.terminate()
        proc.join()
        yield problem, result


def expert_knows(problem: gen.Problem) -> bool:
    """ALFWorld's handcoded expert looks for an object only in the receptacles its prior table lists
    for that type; a type missing from the table (e.g. TeddyBear) it can never find."""
    from alfworld.agents.expert.handcoded_expert import BasePolicy
    return bool(BasePolicy.OBJECT_TO_VAL_RECEPTACLE.get(problem.object_target.lower()))


def expert_steps(game_file: str | Path, max_steps: int = 50) -> int | None:
    """Steps ALFWorld's handcoded expert takes to win the game, or None when it does not within ``max_steps``."""
    from agentgym.envs.alfworld.env import AlfWorldEnv
    env = AlfWorldEnv(split="train")
    env.games = [str(game_file)]
    try:
        env.reset(seed=0)
        for step in range(1, max_steps + 1):
            _, reward, done, _, _ = env.step(env.expert_action())
            if done:
                return step if reward > 0 else None
        return None
    finally:
        env.close()


def generate(n: int, out: Path | None, *, seed: int = 0, scenes_from: str | None = None,
             task_types: list[str] | None = None, jobs: int = 1, oversample: float = 2.0, timeout_s: float = 30.0,
             expert_max_steps: int = 0, log=print) -> list[tuple[gen.Problem, list[str]]]:
    """Draw problems, keep the first ``n`` that Fast Downward solves (balanced over task types
    while candidates last), write them under ``out`` when given. Returns (problem, plan) pairs.
    ``expert_max_steps`` > 0 also drops problems ALFWorld's handcoded expert cannot win within that
    many steps (the embedded set, so expert warm starts and tests work on every game)."""
    import tempfile
    scenes = gen.load_scenes(scenes_from)
    wanted = task_types or list(gen.TASK_TYPES.values())
    candidates = gen.sample_problems(scenes, int(n * oversample) + len(wanted), seed=seed, task_types=wanted)
    if expert_max_steps:
        candidates = [p for p in candidates if expert_knows(p)]
    quota = {t: -(-n // len(wanted)) for t in wanted}
    kept: list[tuple[gen.Problem, list[str]]] = []
    with tempfile.TemporaryDirectory() as scratch:
        items = [(p, scenes[p.scene_key]) for p in candidates]
        for problem, walkthrough in _solve_all(items, jobs, timeout_s, wanted=lambda p: quota[p.task_type] > 0):
            if len(kept) >= n:
                break
            if not walkthrough or quota[problem.task_type] <= 0:
                log(f"  skip {problem.name} ({'no plan' if not walkthrough else 'task type full'})")
                continue
            if expert_max_steps:
                game = gen.write_game(problem, scenes[problem.scene_key], Path(scratch), walkthrough)
                steps = expert_steps(game, expert_max_steps)
                if steps is None:
                    log(f"  skip {problem.name} (handcoded expert does not win in {expert_max_steps} steps)")
                    continue
            quota[problem.task_type] -= 1
            kept.append((problem, walkthrough))
            if out is not None:
                gen.write_game(problem, scenes[problem.scene_key], out / "json_2.1.1" / "train", walkthrough)
            log(f"  [{len(kept)}/{n}] {problem.name}: {len(walkthrough)}-step plan"
                + (f", expert wins in {steps}" if expert_max_steps else ""))
    return kept


def expert_trajectories(episodes: int, out: Path, *, split: str = "train", data_dir: str | None = None,
                        max_turns: int = 50, seed: int = 0, num_envs: int = 2, backend: str = "local") -> dict:
    """ALFWorld's handcoded expert through agentgym's pool; won episodes saved as agentgym
    trajectories (JSONL) for behaviour cloning. Returns the rollout metrics."""
    from agentgym.policies import make_policy
    from agentgym.pool import make_pool
    from agentgym.rollout import EpisodeSpec, collect
    from agentgym.trajectory import save_jsonl

    kwargs = {"split": split, **({"data_dir": data_dir} if data_dir else {})}
    pool = make_pool("ALFWorld-v0", num_envs, backend=backend, env_kwargs=kwargs, max_turns=max_turns, with_expert=True)
    try:
        trajs, metrics = collect(pool, make_policy("expert", seed=seed), [EpisodeSpec(seed + i) for i in range(episodes)])
    finally:
        pool.close()
    won = [t for t in trajs if t.success]
    save_jsonl(won, out)
    print(f"expert won {len(won)}/{len(trajs)} episodes; wrote {out}")
    return metrics


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="agentgym data alfworld", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="count the solvable games of each split")
    ap.add_argument("--data-dir", default=None, help="ALFWorld data folder (default: $ALFWORLD_DATA)")
    ap.add_argument("--generate", type=int, default=0, metavar="N", help="generate N solvable training games")
    ap.add_argument("--out", default=None, help="output data folder for --generate")
    ap.add_argument("--scenes", default=None, help="folder of ALFRED trials to take scene states from "
                    "(default: the embedded seen-floorplan scenes); valid_unseen scenes are skipped")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--task-types", default=None, help="comma-separated ids 1-6 or names (default: all six)")
    ap.add_argument("--jobs", type=int, default=1, help="planner processes")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds Fast Downward may take per problem")
    ap.add_argument("--expert-trajectories", default=None, metavar="OUT.jsonl",
                    help="run ALFWorld's expert and save its won episodes as agentgym trajectories")
    ap.add_argument("--episodes", type=int, default=20, help="episodes for --expert-trajectories")
    ap.add_argument("--split", default="train", help="split for --expert-trajectories")
    ap.add_argument("--expert-check", type=int, default=0, metavar="STEPS",
                    help="keep only games ALFWorld's handcoded expert wins within STEPS steps (0: no check)")
    ap.add_argument("--embed", action="store_true", help=argparse.SUPPRESS)   # maintainers: rebuild the embedded set
    args = ap.parse_args(argv)
    try:
        task_types = games.parse_task_types(args.task_types)
    except ValueError as e:
        ap.error(str(e))
    if args.generate > 0:
        if not args.out and not args.embed:
            ap.error("--generate needs --out DIR (the data folder to write json_2.1.1/train into).")
        out = Path(args.out).expanduser() if args.out else None
        kept = generate(args.generate, out, seed=args.seed, scenes_from=args.scenes, task_types=task_types,
                        jobs=args.jobs, timeout_s=args.timeout, expert_max_steps=args.expert_check)
        if args.embed:   # with --task-types, only the rows of those types are replaced
            rows = [{**p.__dict__, "walkthrough": w} for p, w in kept]
            if task_types:
                rows = [r for r in games.embedded_problems() if r["task_type"] not in task_types] + rows
            games.EMBEDDED_PROBLEMS.write_text(json.dumps(rows, indent=0))
            print(f"wrote {len(rows)} problems to {games.EMBEDDED_PROBLEMS}")
        if out is not None:
            print(f"wrote {len(kept)} games under {out / 'json_2.1.1' / 'train'}; use ALFWORLD_DATA={out}")
        return 0 if kept else 1
    if args.expert_trajectories:
        expert_trajectories(args.episodes, Path(args.expert_trajectories), split=args.split,
                            data_dir=args.data_dir, seed=args.seed)
        return 0
    if args.check:
        root = games.data_root(args.data_dir, required=False)
        print(f"data folder: {root or '(none: set ALFWORLD_DATA or --data-dir)'}")
        for split in games.SPLITS:
            try:
                found = games.collect_games(split, args.data_dir)
                print(f"  {split}: {len(found)} games")
            except FileNotFoundError as e:
                print(f"  {split}: missing ({str(e).splitlines()[0]})")
        return 0
    ap.print_help()
    return 2
