"""SPA-RL against the PPO and GRPO baselines on one env: same warm start, same seeds, same budget
in environment steps (SPA's exploration episodes count against it), the embedded default model.

    python benchmarks/spa_compare.py --env minihack --budget 1500 --seeds 0 1
    python benchmarks/spa_compare.py --env webshop --budget 2000 --name spa_compare_webshop
    python benchmarks/spa_compare.py --env alfworld --budget 2000 --name spa_compare_alfworld

Each run trains until its env-step count reaches the budget, then is evaluated on the fixed eval
seeds (eval.seed + i): success rate, score (mean return) and grounding accuracy (share of valid
actions). Writes benchmarks/results/<name>.json and a PNG of rollout success against env steps.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, peak_rss_mb, write_result  # noqa: E402

ALGOS = ("spa", "ppo", "grpo")


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
        result, _ = evaluate(trainer.policy, cfg, pool=trainer.pool)
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
    if algo == "grpo":
        ov.append(f"algo.group_size={args.group_size}")
    if algo == "spa":
        ov += [f"algo.explore_episodes={args.explore}"] + list(args.spa)
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
                          **{k: m[k] for k in ("spa/heldout_sum_corr", "spa/estimator_loss") if k in m}})
        result, trajs = evaluate(trainer.policy, cfg, pool=trainer.pool)
        turns = [t for tr in trajs for t in tr.turns]
        spa_rows = [r for r in trainer.history if "spa/explore_episodes" in r or "spa/estimator_train_trajectories" in r]
    finally:
        trainer.cleanup()
    return {"algo": algo, "seed": seed, "iterations": it, "env_steps": trainer.counters["env_steps_total"],
            "eval_success_rate": result["success_rate"], "eval_score": result["mean_return"],
            "eval_grounding_accuracy": 1 - sum(bool(t.info.get("invalid_action")) for t in turns) / max(len(turns), 1),
            "eval_mean_turns": result["mean_turns"], "train_time_s": round(time.perf_counter() - t0, 1),
            "curve": curve, "spa_stages": spa_rows}


def plot(runs: list[dict], path: Path, title: str, warm: dict | None = None) -> None:
    """Rollout success and score against env steps; stars: final eval; dashed: eval after the warm start."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    colors = {"spa": "tab:red", "ppo": "tab:blue", "grpo": "tab:green"}
    for ax, key, eval_key, label in [(axes[0], "success_rate", "eval_success_rate", "success rate"),
                                     (axes[1], "mean_return", "eval_score", "score (mean return)")]:
        for r in runs:
            xs = [p["env_steps"] for p in r["curve"]]
            ax.plot(xs, [p[key] for p in r["curve"]], marker="o", color=colors.get(r["algo"]), alpha=0.8,
                    label=f"{r['algo']} seed {r['seed']} (rollouts)")
            ax.plot([r["env_steps"]], [r[eval_key]], marker="*", markersize=14, color=colors.get(r["algo"]),
                    linestyle="none", label=f"{r['algo']} seed {r['seed']} (final eval)")
        if warm:
            ax.axhline(sum(w[eval_key] for w in warm.values()) / len(warm), color="gray", linestyle="--",
                       label="eval after warm start")
        ax.set_xlabel("environment steps (SPA: exploration included)")
        ax.set_ylabel(label)
    axes[0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="minihack")
    p.add_argument("--algos", nargs="+", default=list(ALGOS), choices=ALGOS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--budget", type=int, default=1500, help="environment steps per run (exploration included)")
    p.add_argument("--episodes-per-iter", type=int, default=16)
    p.add_argument("--group-size", type=int, default=4)
    p.add_argument("--explore", type=int, default=32, help="SPA exploration episodes")
    p.add_argument("--warm-start", type=int, default=16, help="expert episodes for behaviour cloning (all algos)")
    p.add_argument("--warm-start-epochs", type=int, default=10, help="behaviour-cloning passes (all algos)")
    p.add_argument("--minibatch", type=int, default=64)
    p.add_argument("--num-envs", type=int, default=4)
    p.add_argument("--eval-episodes", type=int, default=32)
    p.add_argument("--spa", nargs="*", default=[], help="extra algo.* overrides for SPA only, e.g. algo.beta=0.1")
    p.add_argument("--name", default=None, help="result name (default spa_compare_<env>)")
    p.add_argument("--out-dir", default="/tmp/agentgym_spa_compare")
    p.add_argument("override", nargs="*", help="extra key=value config overrides for every run")
    args = p.parse_args(argv)
    name = args.name or f"spa_compare_{args.env.split('-')[0].lower()}"
    runs = []
    shutil.rmtree(Path(args.out_dir) / name, ignore_errors=True)      # never mix in an older run's folders
    warm = {}
    for seed in args.seeds:
        model_path, warm[seed] = warm_start(args.env, seed, args, Path(args.out_dir) / name)
        print(f"warm start seed {seed}: {warm[seed]}")
        for algo in args.algos:
            r = run_one(args.env, algo, seed, args, Path(args.out_dir) / name, model_path)
            print(f"{algo} seed {seed}: success {r['eval_success_rate']:.3f} score {r['eval_score']:.3f} "
                  f"grounding {r['eval_grounding_accuracy']:.3f} ({r['env_steps']} env steps, {r['train_time_s']} s)")
            runs.append(r)
    summary = {}
    for algo in args.algos:
        rs = [r for r in runs if r["algo"] == algo]
        summary[algo] = {k: sum(r[k] for r in rs) / len(rs) for k in
                         ("eval_success_rate", "eval_score", "eval_grounding_accuracy", "env_steps")}
    plot(runs, RESULTS / f"{name}.png", f"{args.env}: SPA vs PPO vs GRPO (agentgym-tiny, CPU)", warm)
    write_result(name, {"env": args.env, "budget_env_steps": args.budget, "seeds": args.seeds,
                        "settings": {k: v for k, v in vars(args).items() if k not in ("name", "out_dir")},
                        "notes": "CPU machine with 2 cores: times are not comparable across runs made under "
                                 "different loads. Same warm start (BC on the expert), "
                                 "same seeds and the same env-step budget for every algorithm; SPA spends part of "
                                 "its budget on exploration episodes for the estimator. The warm start (behaviour "
                                 "cloning, choice cross-entropy) runs once per seed and every algorithm starts "
                                 "from its weights (so SPA's stage 1 is this shared warm start).",
                        "summary": summary, "warm_start": warm, "runs": runs, "peak_rss_mb": peak_rss_mb()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
