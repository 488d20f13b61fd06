"""Where SPA's time goes on a device: `agentgym train --env webshop --algo spa` shortened to a few
iterations, once per (model, device), each stage timed (warm start, exploration + estimator, PPO
rollout and update, evaluation).

    python benchmarks/spa_device.py --runs tiny@cpu                      # this machine
    python benchmarks/spa_device.py --runs tiny@cuda tiny@cpu smollm2-shape@cuda --name spa_device_h100

Models: ``tiny`` is agentgym-tiny (the default); ``smollm2-shape`` is a Llama with SmolLM2-135M's
layer sizes (30 layers, width 576, 9 heads / 3 KV heads, 106M parameters without embeddings) over
the tiny tokenizer, randomly initialised: it times a real-sized model where none can be downloaded,
and learns nothing. The JSON is rewritten after each run, so a killed benchmark keeps what finished.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, peak_rss_mb, write_result  # noqa: E402

SMOLLM2_SHAPE = dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                     num_key_value_heads=3, tie_word_embeddings=True)
STAGES = ("warm_start_s", "explore_and_estimator_s", "rollout_s", "update_s", "estimator_refresh_s", "eval_s")


def smollm2_shaped(folder: Path) -> Path:
    """A random Llama of SmolLM2-135M's shape, saved with the tiny tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from agentgym.models import TINY_CONFIG, tiny_path

    tok = AutoTokenizer.from_pretrained(tiny_path())
    cfg = LlamaConfig(**{**TINY_CONFIG, **SMOLLM2_SHAPE}, vocab_size=len(tok), bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def run_one(model: str, device: str, args, out_dir: Path) -> dict:
    import torch

    from agentgym.config import load_config
    from agentgym.trainers.loop import Trainer

    path = "agentgym-tiny" if model == "tiny" else str(smollm2_shaped(out_dir / "smollm2-shape"))
    dtype = args.dtype
    cfg = load_config(env="webshop", algo="spa", overrides=[
        f"model.path={path}", f"model.dtype={dtype}", f"model.device={device}", "rollout.pool=local",
        f"rollout.num_envs={args.num_envs}", f"train.iterations={args.iterations}",
        f"train.micro_batch_size={args.micro_batch}", f"algo.estimator_batch={max(1, args.micro_batch // 4)}",
        f"train.episodes_per_iter={args.episodes}", f"train.warm_start.episodes={args.episodes}",
        "train.warm_start.epochs=2", f"algo.explore_episodes={args.episodes}", "algo.estimator_epochs=2",
        "eval.every=0", f"eval.episodes={args.episodes}", "checkpoint.every=0", f"output_dir={out_dir}",
        f"run_name={model}_{device.replace(':', '')}", "logging.progress=false", "logging.tensorboard=false"])
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    trainer = Trainer(cfg)
    try:
        trainer.setup()
        rows = trainer.train()
    finally:
        trainer.cleanup()
    wall = time.perf_counter() - t0
    ppo = [r for r in rows if "charts/update_time_s" in r]
    before_ppo = [r for r in rows if int(r.get("step", 0)) == 0]

    def total(key: str, rs: list[dict]) -> float:
        return round(sum(float(r.get(key, 0.0)) for r in rs), 2)

    stages = {"warm_start_s": total("charts/warm_start_time_s", rows),
              "explore_and_estimator_s": total("spa/explore_time_s", before_ppo) + total("spa/estimator_time_s",
                                                                                           before_ppo),
              "rollout_s": total("charts/rollout_time_s", ppo), "update_s": total("charts/update_time_s", ppo),
              "estimator_refresh_s": total("spa/estimator_time_s", ppo),
              "eval_s": total("charts/eval_time_s", rows)}
    steps = sum(int(r.get("rollout/env_steps", 0)) for r in ppo)
    return {"model": model, "device": device, "dtype": dtype,
            "parameters": sum(p.numel() for p in trainer.model.parameters()), "wall_s": round(wall, 1),
            "stages": stages, "ppo_env_steps": steps,
            "ppo_env_steps_per_s": round(steps / max(stages["rollout_s"] + stages["update_s"], 1e-9), 2),
            "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20) if device.startswith("cuda") else None,
            "eval_score": rows[-1].get("eval/mean_return"), "eval_success_rate": rows[-1].get("eval/success_rate")}


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.6 * len(results) + 1.6))
    labels = [f"{r['model']} @ {r['device']}" for r in results]
    left = [0.0] * len(results)
    for stage in STAGES:
        vals = [r["stages"][stage] for r in results]
        ax.barh(labels, vals, left=left, label=stage.removesuffix("_s"))
        left = [a + b for a, b in zip(left, vals)]
    ax.set_xlabel("seconds")
    ax.set_title("SPA on WebShop: time per stage")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", nargs="+", default=["tiny@cpu"], help="model@device, model in tiny | smollm2-shape")
    p.add_argument("--iterations", type=int, default=2, help="PPO iterations per run")
    p.add_argument("--episodes", type=int, default=16,
                   help="episodes per stage: warm start, exploration, each PPO iteration, evaluation")
    p.add_argument("--num-envs", type=int, default=8)
    p.add_argument("--dtype", default="float32", help="model.dtype (bfloat16 weights gave a NaN SPA loss by "
                                                      "PPO iteration 2 with the SmolLM2-shaped model)")
    p.add_argument("--micro-batch", type=int, default=8,
                   help="turns per forward/backward (train.micro_batch_size); the estimator takes a quarter as "
                        "many trajectories (~15 turns each)")
    p.add_argument("--name", default="spa_device")
    args = p.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="spa_device_") as tmp:
        for run in args.runs:
            model, _, device = run.partition("@")
            print(f"== {model} on {device or 'cpu'}", flush=True)
            results.append(run_one(model, device or "cpu", args, Path(tmp)))
            print(results[-1], flush=True)
            write_result(args.name, {"iterations": args.iterations, "episodes": args.episodes,
                                     "peak_rss_mb": peak_rss_mb(), "runs": results})
            plot(results, RESULTS / f"{args.name}.png")


if __name__ == "__main__":
    main()
