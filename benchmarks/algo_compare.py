"""Algorithms against each other on one env: same warm start, same seeds, same budget in
environment steps (SPA's exploration episodes count against it), the embedded default model.
spa_compare.py and archer_compare.py are this script with their own defaults.

    python benchmarks/algo_compare.py --env webshop --budget 1200 --seeds 0 1 2 --name spa_compare_webshop
    python benchmarks/algo_compare.py --env alfworld --budget 2000 --name spa_compare_alfworld
    python benchmarks/algo_compare.py --env minihack --budget 1500 --seeds 0 1 --algos spa ppo
    python benchmarks/algo_compare.py --env TwentyQuestionsSubset-v0 --algos archer ppo grpo
    python benchmarks/algo_compare.py --env TwentyQuestionsSubset-v0 --algos igpo igpo_no_gain grpo

Each run trains until its env-step count reaches the budget, then is evaluated on the fixed eval
seeds (eval.seed + i): success rate, score (mean return) and grounding accuracy (share of valid
actions). The warm start (behaviour cloning on the expert) runs once per seed and every algorithm
starts from its weights. Finished warm starts and runs are kept under --out-dir/<name>/ and reused
when the script is run again with the same settings (add algorithms or seeds later; --fresh starts
over). Writes benchmarks/results/<name>.json (mean and std over seeds) and a PNG: rollout success
and score against env steps, and the final eval score per algorithm beside the warm start's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, peak_rss_mb, write_result  # noqa: E402

ALGOS = ("spa", "gigpo", "ppo", "grpo", "archer", "igpo", "igpo_no_gain", "igpo_choice", "calm_oracle", "calm_llm")
GROUP_ALGOS = ("grpo", "gigpo", "igpo")        # get algo.group_size
COLORS = {"spa": "tab:red", "gigpo": "tab:purple", "ppo": "tab:blue", "grpo": "tab:green", "archer": "tab:orange",
          "igpo": "tab:brown", "igpo_no_gain": "tab:olive", "igpo_choice": "tab:pink", "calm_oracle": "tab:cyan",
          "calm_llm": "tab:gray"}
VARIANTS = {"igpo_no_gain": ("igpo", ["algo.info_gain=none"]),    # a named run: (--algo, its overrides)
            "igpo_choice": ("igpo", ["algo.belief=choice"]),
            "calm_oracle": ("calm", ["algo.judge.backend=oracle"]),   # CALM's judge: the env's subgoal flags
            "calm_llm": ("calm", ["algo.judge.backend=hf", "algo.judge.model=agentgym-tiny", "algo.judge.mode=choose"])}


def variant(name: str) -> tuple[str, list[str]]:
    """A run name's ``--algo`` and its own overrides (``igpo_no_gain`` -> igpo, [algo.info_gain=none])."""
    return VARIANTS.get(name, (name, []))


def common_overrides(seed: int, args, out_dir: Path, run_name: str) -> list[str]:
    return [f"seed={seed}", "rollout.pool=local", f"rollout.num_envs={args.num_envs}", "train.iterations=1000",
            f"train.episodes_per_iter={args.episodes_per_iter}", f"train.minibatch_size={args.minibatch}",
            "eval.every=0", f"eval.episodes={args.eval_episodes}", "checkpoint.every=0", "checkpoint.keep=1",
            f"output_dir={out_dir}", f"run_name={run_name}", "logging.progress=false",
            "logging.tensorboard=false"] + list(args.override)


def warm_start(env: str, seed: int, args, out_dir: Path) -> tuple[Path, dict]:
    """Behaviour cloning on the expert once per seed; every algorithm starts from these weights."""
    from agentgym.config import load_config
    from agentgym.evaluate import evaluate
    from agentgym.trainers.loop import Trainer

    cfg = load_config(env=env, algo="bc", overrides=common_overrides(seed, args, out_dir, f"warm_start_{seed}") + [
        f"train.warm_start.episodes={args.warm_start}", f"train.warm_start.epochs={args.warm_start_epochs}"])
    trainer = Trainer(cfg)
    try:
        trainer.setup()                                   # runs the warm start
        path = out_dir / f"warm_start_{seed}" / "model"
        trainer.model.save_pretrained(path)
        trainer.tokenizer.save_pretrained(path)
        result, _ = evaluate(trainer.policy, cfg, pool=trainer.eval_pool())
        return path, {**trainer.history[0], "eval_success_rate": result["success_rate"],
                      "eval_score": result["mean_return"]}
    finally:
        trainer.cleanup()


def run_one(env: str, algo: str, seed: int, args, out_dir: Path, model_path: Path) -> dict:
    from agentgym.config import load_config
    from agentgym.evaluate import evaluate
    from agentgym.trainers.loop import Trainer

    ov = common_overrides(seed, args, out_dir, f"{algo}_{seed}") + [f"model.path={model_path}",
                                                                    "train.warm_start.episodes=0"]
    name, (algo, variant_overrides) = algo, variant(algo)
    if algo in GROUP_ALGOS:
        ov.append(f"algo.group_size={args.group_size}")
    if algo == "spa":
        ov += [f"algo.explore_episodes={args.explore}"] + list(args.spa)
    if algo == "archer":
        ov += list(args.archer)
    if algo == "igpo":
        ov += variant_overrides + list(args.igpo)
    if algo == "calm":
        ov += variant_overrides + list(args.calm)
    cfg = load_config(env=env, algo=algo, overrides=ov)
    t0 = time.perf_counter()
    trainer = Trainer(cfg)
    curve = []
    try:
        trainer.setup()
        it = 0
        while trainer.counters["env_steps_total"] < args.budget:
            it += 1
            state = trainer.run_iteration(it)
            m = state.metrics
            turns = [t for tr in state.trajectories for t in tr.turns]
            curve.append({"env_steps": trainer.counters["env_steps_total"],
                          "success_rate": m.get("rollout/success_rate"), "mean_return": m.get("rollout/mean_return"),
                          "grounding_accuracy": 1 - sum(bool(t.info.get("invalid_action")) for t in turns)
                          / max(len(turns), 1),
                          "mean_turns": m.get("rollout/mean_turns"),
                          **{k: m[k] for k in m if k.startswith(("spa/", "gigpo/", "archer/", "igpo/", "calm/")) and isinstance(m[k], (int, float))}})
        result, trajs = evaluate(trainer.policy, cfg, pool=trainer.eval_pool())
        turns = [t for tr in trajs for t in tr.turns]
        spa_rows = [r for r in trainer.history if "spa/explore_episodes" in r or "spa/estimator_train_trajectories" in r]
    finally:
        trainer.cleanup()
    return {"algo": name, "seed": seed, "iterations": it, "env_steps": trainer.counters["env_steps_total"],
            "peak_rss_mb": peak_rss_mb(),                 # of the benchmark process so far
            "eval_success_rate": result["success_rate"], "eval_score": result["mean_return"],
            "eval_grounding_accuracy": 1 - sum(bool(t.info.get("invalid_action")) for t in turns) / max(len(turns), 1),
            "eval_mean_turns": result["mean_turns"], "train_time_s": round(time.perf_counter() - t0, 1),
            "curve": curve, "spa_stages": spa_rows}


def mean_std(xs: list[float]) -> dict:
    """Mean, population std and the values, over seeds."""
    import numpy as np

    a = np.asarray(xs, dtype=float)
    return {"mean": float(a.mean()), "std": float(a.std()), "per_seed": [float(x) for x in a]} if len(a) else {}


def summarize(runs: list[dict], warm: dict, algos: list[str]) -> dict:
    """Per algorithm: final eval score / success over seeds, and the gain over each seed's own warm start."""
    out = {"warm_start": {k: mean_std([w[k] for w in warm.values()]) for k in ("eval_score", "eval_success_rate")}}
    for algo in algos:
        rs = [r for r in runs if r["algo"] == algo]
        if rs:
            out[algo] = {k: mean_std([r[k] for r in rs]) for k in
                         ("eval_score", "eval_success_rate", "eval_grounding_accuracy", "eval_mean_turns", "env_steps")}
            out[algo]["gain_over_warm_start"] = mean_std([r["eval_score"] - warm[str(r["seed"])]["eval_score"]
                                                          for r in rs])
            out[algo]["seeds"] = [r["seed"] for r in rs]
    return out


def plot(runs: list[dict], path: Path, title: str, warm: dict, summary: dict) -> None:
    """Rollout success and score against env steps (dashed: eval after the warm start), and the final
    eval score per algorithm (mean +- std over seeds, dots: seeds) beside the warm start's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, key, eval_key, label in [(axes[0], "success_rate", "eval_success_rate", "success rate (rollouts)"),
                                     (axes[1], "mean_return", "eval_score", "score (rollouts)")]:
        for algo in COLORS:
            for n, r in enumerate(r for r in runs if r["algo"] == algo):
                xs = [p["env_steps"] for p in r["curve"]]
                ax.plot(xs, [p[key] for p in r["curve"]], color=COLORS[algo], alpha=0.6,
                        label=algo if n == 0 else None)
        if warm:
            ax.axhline(summary["warm_start"][eval_key]["mean"], color="gray", linestyle="--", label="eval after warm start")
        ax.set_xlabel("environment steps (SPA: exploration included)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    names = ["warm start"] + [a for a in COLORS if a in summary]
    stats = [summary["warm_start"]["eval_score"]] + [summary[a]["eval_score"] for a in names[1:]]
    ax = axes[2]
    ax.bar(range(len(names)), [s["mean"] for s in stats], yerr=[s["std"] for s in stats], capsize=4,
           color=["gray"] + [COLORS[a] for a in names[1:]], alpha=0.7)
    for x, s in enumerate(stats):
        ax.plot([x] * len(s["per_seed"]), s["per_seed"], "k.", markersize=6)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("final eval score (mean +- std over seeds)")
    ax.grid(alpha=0.3, axis="y")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def settings_key(args, keys: tuple[str, ...]) -> str:
    """A short hash of the settings a cached warm start or run depends on."""
    return hashlib.sha1(json.dumps({k: getattr(args, k) for k in keys}, sort_keys=True).encode()).hexdigest()[:10]


WARM_KEYS = ("env", "warm_start", "warm_start_epochs", "num_envs", "eval_episodes", "override")
RUN_KEYS = WARM_KEYS + ("budget", "episodes_per_iter", "group_size", "explore", "minibatch", "spa", "archer")
OWN_OVERRIDES = ("spa", "archer", "igpo", "calm")     # --spa/--archer/--igpo/--calm: their algorithm's runs only


def run_key(args, algo: str) -> str:
    """The settings one run depends on: the shared ones and its own algorithm's extra overrides, so new
    ArCHer options keep PPO's cached runs (a cache keyed before this holds only where the other
    algorithms' overrides were empty)."""
    own = argparse.Namespace(**vars(args))
    for flag in OWN_OVERRIDES:
        if variant(algo)[0] != flag:
            setattr(own, flag, [])
    return settings_key(own, RUN_KEYS + (("igpo",) if own.igpo else ()) + (("calm",) if own.calm else ()))


def cached(path: Path, key: str, make):
    """make() once per settings key; the result is kept as JSON at ``path``."""
    if path.is_file():
        data = json.loads(path.read_text())
        if data.get("settings_key") == key:
            return data["result"]
    result = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"settings_key": key, "result": result}))
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="minihack")
    p.add_argument("--algos", nargs="+", default=list(ALGOS), choices=ALGOS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--budget", type=int, default=1500, help="environment steps per run (exploration included)")
    p.add_argument("--episodes-per-iter", type=int, default=16)
    p.add_argument("--group-size", type=int, default=4, help="GRPO and GiGPO: rollouts per task")
    p.add_argument("--explore", type=int, default=32, help="SPA exploration episodes")
    p.add_argument("--warm-start", type=int, default=16, help="expert episodes for behaviour cloning (all algos)")
    p.add_argument("--warm-start-epochs", type=int, default=10, help="behaviour-cloning passes (all algos)")
    p.add_argument("--minibatch", type=int, default=64)
    p.add_argument("--num-envs", type=int, default=4)
    p.add_argument("--eval-episodes", type=int, default=32)
    p.add_argument("--spa", nargs="*", default=[], help="extra algo.* overrides for SPA only, e.g. algo.beta=0.1")
    p.add_argument("--archer", nargs="*", default=[], help="extra algo.* overrides for ArCHer only")
    p.add_argument("--igpo", nargs="*", default=[], help="extra algo.* overrides for IGPO and its variants")
    p.add_argument("--calm", nargs="*", default=[], help="extra algo.* overrides for the CALM variants, e.g. "
                   "algo.judge.model=smollm2-135m")
    p.add_argument("--name", default=None, help="result name (default spa_compare_<env>)")
    p.add_argument("--out-dir", default="/tmp/agentgym_spa_compare")
    p.add_argument("--fresh", action="store_true", help="drop the cached warm starts and runs of this name")
    p.add_argument("--warm-start-seed", type=int, default=None,
                   help="one warm start (this seed's) for every seed: the spread is then RL's alone")
    p.add_argument("override", nargs="*", help="extra key=value config overrides for every run")
    args = p.parse_args(argv)
    name = args.name or f"compare_{args.env.split('-')[0].lower()}"
    root = Path(args.out_dir) / name
    if args.fresh:
        shutil.rmtree(root, ignore_errors=True)
    warm_key = settings_key(args, WARM_KEYS)
    runs, warm = [], {}
    for seed in args.seeds:
        ws_seed = seed if args.warm_start_seed is None else args.warm_start_seed

        def make_warm(ws_seed=ws_seed):
            path, row = warm_start(args.env, ws_seed, args, root)
            return {**row, "model_path": str(path), "warm_start_seed": ws_seed}
        warm[str(seed)] = cached(root / f"warm_start_{ws_seed}.json", warm_key, make_warm)
        print(f"warm start seed {seed}: eval score {warm[str(seed)]['eval_score']:.3f} "
              f"success {warm[str(seed)]['eval_success_rate']:.3f}", flush=True)
        for algo in args.algos:
            run_file = f"{algo}_{seed}.json" if ws_seed == seed else f"{algo}_{seed}_ws{ws_seed}.json"
            r = cached(root / "runs" / run_file, run_key(args, algo),
                       lambda: run_one(args.env, algo, seed, args, root, Path(warm[str(seed)]["model_path"])))
            print(f"{algo} seed {seed}: success {r['eval_success_rate']:.3f} score {r['eval_score']:.3f} "
                  f"grounding {r['eval_grounding_accuracy']:.3f} ({r['env_steps']} env steps, {r['train_time_s']} s, "
                  f"peak RSS {r.get('peak_rss_mb')} MB)", flush=True)
            runs.append(r)
    summary = summarize(runs, warm, args.algos)
    plot(runs, RESULTS / f"{name}.png", f"{args.env}: {' vs '.join(a.upper() for a in args.algos)} "
         f"(agentgym-tiny, CPU, {len(args.seeds)} seed(s), {args.budget} env steps)", warm, summary)
    write_result(name, {"env": args.env, "budget_env_steps": args.budget, "seeds": args.seeds,
                        "settings": {k: v for k, v in vars(args).items() if k not in ("name", "out_dir", "fresh")},
                        "notes": "CPU machine with 2 cores: times are not comparable across runs made under "
                                 "different loads. Same warm start (BC on the expert, choice cross-entropy), run "
                                 "once per seed; every algorithm starts from its weights, with the same seeds and "
                                 "the same env-step budget; SPA spends part of its budget on exploration episodes "
                                 "for the estimator. std is over seeds (population std); gain_over_warm_start "
                                 "compares each run with its own seed's warm start.",
                        "summary": summary, "warm_start": warm, "runs": runs, "peak_rss_mb": peak_rss_mb()})
    return 0


def main_with_defaults(algos: list[str], env: str, prefix: str, argv: list[str] | None = None) -> int:
    """``main`` with these --algos / --env unless given, and --name ``<prefix>_<env>`` (the wrappers)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--algos" not in argv:
        argv = ["--algos", *algos, *argv]
    if "--env" not in argv:
        argv = ["--env", env, *argv]
    if "--name" not in argv:
        env = argv[argv.index("--env") + 1]
        argv = ["--name", f"{prefix}_{env.split('-')[0].lower()}", *argv]
    return main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
