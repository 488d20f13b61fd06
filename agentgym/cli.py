"""The ``agentgym`` command line.

    agentgym envs                                   list registered environments
    agentgym play minihack                          play an env in the terminal
    agentgym check-env MiniHack-Room-5x5-v0         validate an env against the contract
    agentgym train --env minihack --algo grpo [key=value ...]
    agentgym eval --env minihack --policy random    success rate and return on fixed seeds
    agentgym data webshop --help                    fetch, check or generate an env family's data
    agentgym calm-eval --judge hf:agentgym-tiny     a CALM subgoal judge against the oracle's labels
    agentgym leaderboard run --suite core@1 --policy random --out results/   one submission, in Docker
    agentgym leaderboard build results/ --out site/                          the static board
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from pathlib import Path


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors whose message is the whole story: printed as one paragraph, no traceback."""
    from agentgym.config import ConfigError
    from agentgym.core import CapabilityError
    from agentgym.judge import JudgeError
    from agentgym.leaderboard.errors import LeaderboardError
    from agentgym.models import ModelNotFoundError
    from agentgym.policies.errors import EndpointError, WeightSyncTimeout
    from agentgym.registry import EnvNotAvailable, UnknownEnvError

    return (ConfigError, CapabilityError, EnvNotAvailable, UnknownEnvError, ModelNotFoundError, FileNotFoundError,
            EndpointError, WeightSyncTimeout, ImportError, JudgeError, LeaderboardError)


def cmd_envs(args: argparse.Namespace) -> int:
    from agentgym.registry import describe, registry

    rows = [describe(i) for i in registry()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        caps = ", ".join(r["capabilities"]) or "-"
        print(f"{r['id']:<34} {r['family']:<10} turns={str(r['max_turns']):<5} [{caps}]  {r['description']}")
    return 0


def cmd_check_env(args: argparse.Namespace) -> int:
    from agentgym.check import check_env
    from agentgym.registry import resolve_id

    env_id = resolve_id(args.id)
    problems = check_env(env_id, fuzz=args.fuzz)
    if not problems:
        print(f"{env_id}: passes the text-env contract.")
        return 0
    print(f"{env_id}: {len(problems)} problem(s)")
    for p in problems:
        print(textwrap.fill(f"- [{p.check}] {p.message}", width=100, subsequent_indent="  "))
    return 1


def cmd_play(args: argparse.Namespace) -> int:
    from agentgym.registry import make, resolve_id

    env_id = resolve_id(args.env)
    env = make(env_id)
    obs, info = env.reset(seed=args.seed)
    print(f"{env_id} (seed {args.seed}). {info.get('instruction', '')}\nType an action, its number, or 'quit'.\n")
    total = 0.0
    while True:
        print(obs)
        actions = info.get("admissible_actions") or []
        if actions:
            print("\nActions: " + "  ".join(f"[{i}] {a}" for i, a in enumerate(actions)))
        try:
            line = input("> ").strip()
        except EOFError:
            line = "quit"
        if line in ("quit", "exit", "q"):
            return 0
        if line.isdigit() and int(line) < len(actions):
            line = actions[int(line)]
        obs, reward, terminated, truncated, info = env.step(line)
        total += reward
        if terminated or truncated:
            print(obs)
            print(f"\nEpisode over: success={info.get('success')} return={total:.2f}")
            return 0


def _load_cfg(args: argparse.Namespace):
    from agentgym.config import load_config

    return load_config(env=args.env, algo=getattr(args, "algo", None), model=args.model,
                       config_file=args.config, overrides=args.overrides)


def cmd_train(args: argparse.Namespace) -> int:
    cfg = _load_cfg(args)
    if args.resume:
        cfg.resume = args.resume
    from agentgym.trainers.loop import Trainer

    trainer = Trainer(cfg)
    try:
        trainer.setup()
        trainer.train()
    finally:
        trainer.cleanup()
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from agentgym.evaluate import evaluate
    from agentgym.policies import backend_options, make_policy

    cfg = _load_cfg(args)
    if args.policy in ("model", "vllm"):
        from agentgym.models import load_model, model_folder, resolve_device

        path = model_folder(args.checkpoint) if args.checkpoint else cfg.model.path
        cfg.model.path = path
        model, tokenizer = load_model(path, dtype=cfg.model.dtype)
        backend = "hf" if args.policy == "model" else "vllm"
        policy = make_policy(backend, model=model, tokenizer=tokenizer, mode=cfg.policy.mode, seed=cfg.seed,
                             device=resolve_device(str(cfg.model.get("device", "auto"))), **backend_options(cfg, backend))
    elif args.policy == "openai":
        policy = make_policy("openai", mode=cfg.policy.mode, seed=cfg.seed, **backend_options(cfg, "openai"))
        policy.check()
    else:
        policy = make_policy(args.policy, seed=cfg.seed)
    result, _ = evaluate(policy, cfg, episodes=args.episodes, progress=True)
    result = {"env": cfg.env.id, "policy": args.policy, "model": args.checkpoint or cfg.model.path
              if args.policy == "model" else None, "seed": cfg.eval.seed, **result}
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


def cmd_calm_eval(args: argparse.Namespace) -> int:
    from agentgym.calm_eval import format_report, run

    result = run(args.env, args.judge, subgoals=args.subgoals, labels_path=args.labels, write_labels=args.write_labels,
                 expert_episodes=args.expert_episodes, random_episodes=args.random_episodes, sample=args.sample,
                 seed=args.seed, device=args.device, predictions_path=args.predictions)
    print(format_report(result))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


def cmd_leaderboard_run(args: argparse.Namespace) -> int:
    from agentgym.leaderboard import container
    from agentgym.leaderboard.runner import resolve_submission, run_suite, summary_line
    from agentgym.leaderboard.suite import load_suite

    suite = load_suite(args.suite)
    submission = resolve_submission(args.policy, name=args.name)
    docker = args.docker
    if docker is None:          # the default once the image exists (and never for an endpoint)
        docker = (submission.policy != "openai" and container.docker_problem() is None
                  and container.image_digest(args.image or container.default_image()) is not None)
        if not docker:
            print("agentgym: evaluating on the host (no Docker image; `agentgym leaderboard image` builds it)",
                  file=sys.stderr)
    if docker:
        summary = container.run_in_container(suite, submission, args.out, image=args.image,
                                             resume=args.resume, num_envs=args.num_envs, cpus=args.cpus,
                                             memory=args.memory, timeout_s=args.timeout_s, progress=args.progress)
    else:
        summary = run_suite(suite, submission, args.out, resume=args.resume, num_envs=args.num_envs,
                            progress=args.progress)
    print(f"{submission.name} on {suite.label}:\n{summary_line(summary)}")
    return 0


def cmd_leaderboard_build(args: argparse.Namespace) -> int:
    from agentgym.leaderboard.site import build_site

    build_site(args.results, args.out)
    print(f"agentgym: the board is in {args.out}/index.html (Markdown table: {args.out}/leaderboard.md)")
    return 0


def cmd_leaderboard_verify(args: argparse.Namespace) -> int:
    from agentgym.leaderboard.runner import verify

    result = verify(args.submitted, args.rerun)
    print(json.dumps(result, indent=2))
    if result["differ"] or not result["episodes"]:
        print(f"agentgym: not verified: {result['episodes'] - result['matched']} of {result['episodes']} episodes "
              f"differ or are missing in the re-run", file=sys.stderr)
        return 1
    print(f"agentgym: verified: all {result['episodes']} episodes equal; {args.submitted}/submission.json marked")
    return 0


def cmd_leaderboard_image(args: argparse.Namespace) -> int:
    from agentgym.leaderboard.container import build_image

    print(build_image(base=args.base, tag=args.tag, wheels=args.wheels))
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    """Hand the rest of the command line to the family's own ``agentgym.envs.<family>.data.main``."""
    import importlib

    try:
        module = importlib.import_module(f"agentgym.envs.{args.family}.data")
    except ModuleNotFoundError as e:
        if e.name not in (f"agentgym.envs.{args.family}", f"agentgym.envs.{args.family}.data"):
            raise
        raise FileNotFoundError(f"The env family {args.family!r} has no data command. Families with one: "
                                f"{', '.join(_data_families()) or 'none'}.") from None
    return module.main(args.args) or 0


def _data_families() -> list[str]:
    envs_dir = Path(__file__).resolve().parent.parent / "envs"
    import agentgym.envs

    roots = [Path(p) for p in agentgym.envs.__path__] + [envs_dir]
    return sorted({d.name for r in roots if r.is_dir() for d in r.iterdir() if (d / "data.py").is_file()})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agentgym", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("envs", help="list registered environments")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_envs)

    p = sub.add_parser("check-env", help="validate an env against the text-env contract")
    p.add_argument("id")
    p.add_argument("--fuzz", type=int, default=500, help="number of malformed actions to send")
    p.set_defaults(fn=cmd_check_env)

    p = sub.add_parser("play", help="play an environment in the terminal")
    p.add_argument("env")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(fn=cmd_play)

    def run_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--env", default=None, help="env config (configs/env/*.yaml), registered id or family")
        p.add_argument("--model", default=None, help="model config name, short name, HF id or local folder")
        p.add_argument("--config", default=None, help="a YAML file merged over the groups")
        p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.iterations=5")

    p = sub.add_parser("train", help="train a policy")
    run_args(p)
    p.add_argument("--algo", default=None, help="algorithm (configs/algo/*.yaml); default grpo")
    p.add_argument("--resume", default=None, help="checkpoint folder or 'auto' (latest in the run folder)")
    p.set_defaults(fn=cmd_train)

    p = sub.add_parser("eval", help="evaluate a policy on fixed seeds")
    run_args(p)
    p.add_argument("--policy", default="model", choices=["model", "vllm", "openai", "expert", "random"],
                   help="model: the HF backend on --checkpoint or model.path; vllm: the same weights in a vLLM engine; "
                        "openai: the server in policy.openai.base_url / policy.openai.model")
    p.add_argument("--checkpoint", default=None, help="a run folder (its latest checkpoint), a checkpoint folder "
                   "(runs/<run>/checkpoints/best: the best eval score) or a model folder")
    p.add_argument("--episodes", type=int, default=None)
    p.add_argument("--out", default=None, help="write the result JSON here")
    p.set_defaults(fn=cmd_eval)

    p = sub.add_parser("calm-eval", help="agreement of a CALM subgoal judge with labels (oracle or a JSONL file)",
                       description="Transitions from expert and random episodes, balanced between subgoal and "
                                   "non-subgoal ones, labelled by the env's oracle (or --labels FILE); the judge's "
                                   "precision / recall / F1 per subgoal and per transition, and a confusion table. "
                                   "The label format is in agentgym/calm_eval.py.")
    p.add_argument("--env", default="MiniHack-KeyRoom-S5-v0")
    p.add_argument("--judge", default="oracle", help="oracle, hf:<model>, openai:<model>@<base_url>, or a mapping "
                   "'{backend: hf, model: smollm2-135m, mode: choose}'")
    p.add_argument("--subgoals", default="preset", choices=["preset", "identify"])
    p.add_argument("--labels", default=None, help="a JSONL label file instead of the oracle's labels")
    p.add_argument("--write-labels", default=None, help="write the sampled, oracle-labelled transitions here")
    p.add_argument("--predictions", default=None, help="write each transition with the judge's prediction here")
    p.add_argument("--expert-episodes", type=int, default=20)
    p.add_argument("--random-episodes", type=int, default=20)
    p.add_argument("--sample", type=int, default=60, help="transitions judged (about half with a subgoal)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="the hf judge's device")
    p.add_argument("--out", default=None, help="write the result JSON here")
    p.set_defaults(fn=cmd_calm_eval)

    p = sub.add_parser("leaderboard", help="evaluate submissions on a fixed suite (in Docker) and build the board")
    board = p.add_subparsers(dest="leaderboard_command", required=True)
    p = board.add_parser("run", help="evaluate one submission on a suite: one JSONL line per episode")
    p.add_argument("--suite", default="core@1", help="a suite label (configs/leaderboard/) or a manifest file")
    p.add_argument("--policy", required=True, help="random, expert, agentgym-tiny, smollm2-135m, a run folder, "
                   "a checkpoint or model folder, or openai:MODEL@BASE_URL")
    p.add_argument("--name", default=None, help="the submission's name (default: from --policy)")
    p.add_argument("--out", default="results", help="results folder: <out>/<name>/episodes.jsonl, summary.json")
    p.add_argument("--docker", dest="docker", action="store_true", default=None,
                   help="run inside a container (the default when the image exists)")
    p.add_argument("--no-docker", dest="docker", action="store_false", help="run on this host")
    p.add_argument("--image", default=None, help="the image (default agentgym:<version>)")
    p.add_argument("--resume", action="store_true", help="continue a run: finished episodes are kept, not re-run")
    p.add_argument("--num-envs", type=int, default=4, help="episodes played at once")
    p.add_argument("--cpus", type=float, default=2, help="container CPU limit")
    p.add_argument("--memory", default="8g", help="container memory limit")
    p.add_argument("--timeout-s", type=float, default=None, help="container wall-clock limit (default from the suite)")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.set_defaults(fn=cmd_leaderboard_run)
    p = board.add_parser("build", help="a static HTML board (and a Markdown table) from results folders")
    p.add_argument("results")
    p.add_argument("--out", default="site")
    p.set_defaults(fn=cmd_leaderboard_build)
    p = board.add_parser("verify", help="compare a maintainer's re-run with a submission; mark it verified")
    p.add_argument("submitted", help="the submission's results folder (results/<name>)")
    p.add_argument("rerun", help="the re-run's results folder (same model, same suite)")
    p.set_defaults(fn=cmd_leaderboard_verify)
    p = board.add_parser("image", help="build the leaderboard's Docker image (docker/Dockerfile)")
    p.add_argument("--base", default="python:3.11-slim", help="base image (here: agentgym-base:bookworm, "
                   "made by docker/make-base.sh)")
    p.add_argument("--tag", default=None)
    p.add_argument("--wheels", action="store_true", help="build a wheelhouse first, so the build needs no network")
    p.set_defaults(fn=cmd_leaderboard_image)

    p = sub.add_parser("data", help="fetch, check or generate an env family's data (agentgym data FAMILY --help)",
                       add_help=False)
    p.add_argument("family")
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(fn=cmd_data)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except KeyboardInterrupt:
        print("agentgym: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if os.environ.get("AGENTGYM_DEBUG") or not isinstance(e, _user_errors()):
            raise
        print(textwrap.fill(f"agentgym {args.command}: error: {e}", width=100), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
