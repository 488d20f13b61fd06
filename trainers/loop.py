"""The shared training loop (a torchtune-style recipe: setup / train / save_checkpoint / cleanup).

    trainer = Trainer(load_config(env="minihack", algo="grpo"))
    trainer.setup(); trainer.train(); trainer.cleanup()

One iteration runs the steps named in ``AlgoSpec.steps`` (default ``DEFAULT_STEPS``):

    collect -> rewards -> advantages -> update -> sync -> eval -> log -> checkpoint

Each step is ``Trainer.step_<name>(state)``; an algorithm replaces one with
``AlgoSpec.hooks[name](trainer, state)`` or reorders/extends them with ``AlgoSpec.steps``.
The algorithm supplies only its config, ``compute_advantages`` and ``objective``; the loop owns
the optimizer (AdamW over the trainable parameters), minibatches over turns, gradient
clipping, epochs, evaluation, logging and checkpoints.

The run folder ``output_dir/run_name`` (default ``{env}__{algo}__{seed}__{YYYYmmdd-HHMMSS}``) holds
    config.yaml                 the merged config
    metrics.jsonl, tb/          every logged row (console line, JSON, TensorBoard)
    trajectories/               a few episodes per iteration (iter_*) and per evaluation (eval_*)
    expert_trajectories.jsonl   the warm start's expert episodes
    checkpoints/iter_*          the newest ``checkpoint.keep``; ``--resume auto`` takes the latest
    checkpoints/best            the checkpoint at the highest eval score (eval/mean_return) so far
    learning_curve.png          success rate and score (eval, rollout) against env steps
    summary.json                eval before (step 0) -> after, best eval and checkpoints, time, env steps
    reference/                  the frozen KL reference, when the algorithm keeps one

Every stage shows a header and a progress bar with rate and ETA (``agentgym.progress``;
``logging.progress=false`` hides the bars). The eval at step 0 (after the warm start) is the
level the curve and the summary compare against.

The model stays in eval mode throughout (no dropout): rollout and learner log-probs then agree,
so the first minibatch's ratio is exactly 1.
"""

from __future__ import annotations

import copy
import json
import math
import random
import resource
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from agentgym.config import ConfigError
from agentgym.logger import MetricLogger, best_eval_row, format_summary, plot_curve, start_label, summarize_evals
from agentgym.progress import Bar, Progress
from agentgym.trainers import AlgoSpec, LearnerContext, TurnBatch, build_config, get_algo
from agentgym.trainers import checkpoint as ckpt
from agentgym.trainers.batch import rollout_correction
from agentgym.trainers.update import optimizer_pass, permutations
from agentgym.trajectory import Trajectory, save_jsonl

SAMPLES_PER_ITER = 4          # trajectories saved per iteration under trajectories/


@dataclass
class IterState:
    """What the steps of one iteration hand each other."""
    iteration: int
    trajectories: list[Trajectory] = field(default_factory=list)
    batch: TurnBatch | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    start: float = field(default_factory=time.perf_counter)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def default_run_name(cfg: DictConfig) -> str:
    env = str(cfg.env.id).replace("/", "_")
    return f"{env}__{cfg.algo.name}__{cfg.seed}__{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def _sel(cfg: DictConfig, key: str, default: Any) -> Any:
    value = OmegaConf.select(cfg, key, default=default)
    return default if value is None else value


class Trainer:
    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.algo: AlgoSpec = get_algo(str(cfg.algo.name))
        self.algo_cfg = build_config(self.algo.config_cls, cfg.algo)
        self.steps: list[str] = list(self.algo.steps)
        self.iteration = 0                      # completed iterations
        self.history: list[dict[str, Any]] = []  # every logged row, also saved in checkpoints
        self.counters = {"env_steps_total": 0, "episodes_total": 0}
        self.algo_state: dict[str, Any] = {}     # an algorithm's own state (SPA: stage, estimator), checkpointed
        self.algo_objects: dict[str, Any] = {}   # what an algorithm builds from algo_state (SPA's estimator); not saved
        self.model = self.tokenizer = self.policy = self.pool = self.optimizer = self.value_head = None
        self.ref_model = self.logger = self.run_dir = None
        self._expert_pool = self._expert_policy = None
        self.learners = None              # trainers.distributed.LearnerGroup when train.learners > 1
        self._eval_pool = None            # only when eval.env_kwargs differs from the training env
        self.progress = Progress(enabled=bool(cfg.logging.progress))   # stage headers and bars (also for hooks)
        self._iter_bar: Bar | None = None  # the iteration bar, while train() runs
        self._started = time.perf_counter()     # summary.json's wall time: this process's part of the run
        self._resumed_from: Path | None = None
        self.summary: dict[str, Any] | None = None   # what summary.json holds, once train() is done

    # -- setup ------------------------------------------------------------------------------
    def setup(self) -> None:
        cfg = self.cfg
        self._validate()
        seed_everything(int(cfg.seed))
        resume_from = self._resolve_run_dir()
        self.progress.stage(f"{cfg.env.id} with {cfg.algo.name} on model {cfg.model.path}; run folder {self.run_dir}")
        from agentgym.config import save_config
        save_config(cfg, self.run_dir / "config.yaml")

        from agentgym.models import load_model, resolve_device
        lora = OmegaConf.to_container(cfg.model.lora) if cfg.model.lora.enabled else None
        with nullcontext() if self.progress.enabled else ckpt.quiet_transformers():   # its "Loading weights" bar
            self.model, self.tokenizer = load_model(str(cfg.model.path), dtype=str(cfg.model.dtype), lora=lora)
        self.model.eval()
        from agentgym.policies import backend_options, make_policy
        self.device = resolve_device(str(_sel(cfg, "model.device", "auto")))
        self.model.to(self.device)
        self.policy = make_policy(str(cfg.policy.backend), model=self.model, tokenizer=self.tokenizer,
                                  mode=str(cfg.policy.mode), seed=int(cfg.seed), device=self.device,
                                  **backend_options(cfg))
        if self.algo.value_head:
            from agentgym.learner import ValueHead
            self.value_head = ValueHead.for_model(self.model)
        self.optimizer = self._make_optimizer()
        self.pool = self._make_pool(with_expert=False)
        if resume_from is not None:
            self._resume(resume_from)
        # purge_step drops TensorBoard events a killed run wrote after its last checkpoint
        self.logger = MetricLogger(self.run_dir, tensorboard=bool(cfg.logging.tensorboard), console=True,
                                   purge_step=self.iteration + 1 if resume_from is not None else None)
        if resume_from is not None:
            self.logger.rewrite(self.history)       # and metrics.jsonl rows likewise
        elif int(cfg.train.warm_start.episodes) > 0:
            self.warm_start()
        if self.algo.needs_reference(self.algo_cfg):
            self._make_reference(resumed=resume_from is not None)
        if int(_sel(cfg, "train.learners", 1)) > 1:
            self.learners = self._make_learners()
            self.learners.push(self.model, self.value_head, self.optimizer, self.ref_model)
        self._sync_policy()       # a separate rollout engine starts from the warm-started / resumed weights

    def _validate(self) -> None:
        cfg = self.cfg
        from agentgym.policies import TRAINABLE
        if str(cfg.policy.backend) not in TRAINABLE:
            raise ConfigError(f"policy.backend={cfg.policy.backend} cannot be trained (it is a served or scripted "
                             f"policy); train with policy.backend=hf or vllm, and use {cfg.policy.backend} "
                             f"with `agentgym eval`.")
        g = int(getattr(self.algo_cfg, "group_size", 1))
        n = int(cfg.train.episodes_per_iter)
        if n < 1 or n % g:
            raise ConfigError(f"train.episodes_per_iter ({n}) must be a positive multiple of algo.group_size ({g}); "
                             f"e.g. train.episodes_per_iter={max(1, n // g) * g}.")
        for key in ("train.iterations", "train.minibatch_size", "train.epochs"):
            if int(OmegaConf.select(cfg, key)) < 1:
                raise ConfigError(f"{key} must be >= 1, got {OmegaConf.select(cfg, key)}.")
        if self.algo.check_env is not None:          # what the algorithm needs from the env (IGPO: its answer)
            self.algo.check_env(cfg)

    def _resolve_run_dir(self) -> Path | None:
        cfg = self.cfg
        out = Path(str(cfg.output_dir))
        guess = out / str(cfg.run_name) if cfg.get("run_name") else None
        prefix = f"{str(cfg.env.id).replace('/', '_')}__{cfg.algo.name}__{cfg.seed}__"
        found = ckpt.resolve_resume(cfg.get("resume"), guess, out, prefix)
        if found is not None:
            self.run_dir = found.parent.parent
        else:
            self.run_dir = guess or out / default_run_name(cfg)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        return found

    def _trainable(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def _make_optimizer(self, lr: float | None = None) -> torch.optim.Optimizer:
        t = self.cfg.train
        lr = float(t.lr if lr is None else lr)
        groups = [{"params": self._trainable(), "lr": lr}]
        if self.value_head is not None:
            groups.append({"params": list(self.value_head.parameters()),
                           "lr": float(getattr(self.algo_cfg, "value_lr", t.lr))})
        return torch.optim.AdamW(groups, lr=lr, weight_decay=float(t.weight_decay))

    def _make_learners(self):
        from agentgym.models import resolve_model_path
        from agentgym.trainers.distributed import LearnerGroup

        cfg, t, ctx = self.cfg, self.cfg.train, self.ctx
        n = int(t.learners)
        self.progress.stage(f"starting {n} learner workers ({t.strategy}) on "
                            f"{'GPUs' if torch.cuda.is_available() else 'CPU (gloo)'}")
        lora = OmegaConf.to_container(cfg.model.lora) if cfg.model.lora.enabled else None
        return LearnerGroup(
            n, strategy=str(t.strategy), model_path=resolve_model_path(str(cfg.model.path)), dtype=str(cfg.model.dtype),
            lora=lora, value_head=self.value_head is not None, reference=self.ref_model is not None,
            timeout_s=float(_sel(cfg, "train.learner_timeout_s", 300.0)), ray_address=cfg.rollout.ray_address,
            train={"lr": float(t.lr), "weight_decay": float(t.weight_decay),
                   "value_lr": float(getattr(self.algo_cfg, "value_lr", t.lr)), "minibatch": int(t.minibatch_size),
                   "micro": self.micro_batch_size, "max_grad_norm": float(t.max_grad_norm)},
            ctx={"temperature": ctx.temperature, "pad_id": ctx.pad_id, "mode": ctx.mode})

    def _make_pool(self, with_expert: bool):
        from agentgym.pool import pool_from_config
        return pool_from_config(self.cfg, with_expert=with_expert)

    def _make_reference(self, resumed: bool) -> None:
        """KL reference: the LoRA base (adapters off) needs nothing; a full model gets a frozen copy of
        the weights RL starts from (after warm start), saved once so a resumed run uses the same one."""
        if ckpt.is_peft(self.model):
            return
        self.ref_model = copy.deepcopy(self.model).eval().requires_grad_(False)
        ref_dir = self.run_dir / "reference"
        if resumed:
            ckpt.load_weights_(self.ref_model, ref_dir)
        else:
            with ckpt.quiet_transformers():
                self.ref_model.save_pretrained(ref_dir)

    @property
    def ctx(self) -> LearnerContext:
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        return LearnerContext(model=self.model, tokenizer=self.tokenizer, value_head=self.value_head,
                              ref_model=self.ref_model, temperature=float(self.cfg.policy.sampling.temperature),
                              pad_id=int(pad or 0), mode=str(self.cfg.policy.mode))

    @property
    def sampling(self):
        from agentgym.policies.base import SamplingParams
        s = self.cfg.policy.sampling
        return SamplingParams(temperature=float(s.temperature), top_p=float(s.top_p),
                              max_new_tokens=int(s.max_new_tokens))

    # -- warm start (behaviour cloning on expert episodes) ----------------------------------------
    def collect_expert(self, episodes: int, iteration: int, save_to: Path | None = None
                       ) -> tuple[list[Trajectory], dict[str, float]]:
        """``episodes`` expert episodes (pool with_expert=True), tokenized for the learner; the
        untokenized trajectories are written to ``save_to`` (JSONL) when given."""
        from agentgym.policies import make_policy
        from agentgym.rollout import collect, episode_specs
        from agentgym.trainers import bc

        if self._expert_pool is None:
            self._expert_pool = self._make_pool(with_expert=True)
            self._expert_policy = make_policy("expert", mode=str(self.cfg.policy.mode), seed=int(self.cfg.seed))
        specs = episode_specs(episodes, 1, int(self.cfg.seed), iteration=iteration)
        with self.progress.bar(len(specs), "expert episodes", unit="ep") as bar:
            trajs, metrics = collect(self._expert_pool, self._expert_policy, specs, self.sampling,
                                     history_turns=int(self.cfg.policy.history_turns), progress=bar.on_episode)
        if save_to is not None:
            save_jsonl(trajs, save_to)
        tokenized = bc.tokenize_trajectories(trajs, self.policy, mode=str(self.cfg.policy.mode),
                                             history_turns=int(self.cfg.policy.history_turns),
                                             system_prompt=self._expert_pool.system_prompt())
        return tokenized, metrics

    def warm_start(self) -> dict[str, float]:
        ws = self.cfg.train.warm_start
        bc_spec = get_algo("bc")
        t0 = time.perf_counter()
        self.progress.stage(f"warm start: collecting {int(ws.episodes)} expert episodes")
        trajs, m = self.collect_expert(int(ws.episodes), iteration=-1,
                                       save_to=self.run_dir / "expert_trajectories.jsonl")
        batch = bc_spec.compute_advantages(trajs, bc_spec.config_cls())
        optimizer = self._make_optimizer(_sel(self.cfg, "train.warm_start.lr", None))  # own AdamW: RL starts fresh
        epochs, steps = int(ws.epochs), self.optimizer_steps(len(batch), int(ws.epochs))
        self.progress.stage(f"warm start: behaviour cloning on {len(trajs)} expert episodes ({epochs} epochs, "
                            f"{len(batch)} turns, {steps} optimizer steps)")
        with self.progress.bar(steps, "behaviour cloning", unit="step") as bar:
            nll = [self._update(batch, bc_spec, bc_spec.config_cls(), optimizer, epochs=1, salt=-1 - e,
                                progress=bar).get("losses/nll") for e in range(epochs)]
        if self.algo.name != "bc":
            self._close_expert()
        metrics = {"warm_start/episodes": m["episodes"], "warm_start/expert_success_rate": m["success_rate"],
                   "warm_start/turns": len(batch), "warm_start/nll_first_epoch": nll[0] if nll else None,
                   "warm_start/nll_last_epoch": nll[-1] if nll else None,
                   "charts/warm_start_time_s": time.perf_counter() - t0, "rollout/env_steps_total": 0}
        self.history.append(self.logger.log(0, metrics))
        return metrics

    def _close_expert(self) -> None:
        if self._expert_pool is not None:
            self._expert_pool.close()
        self._expert_pool = self._expert_policy = None

    # -- the iteration ----------------------------------------------------------------------------
    def step_fn(self, name: str) -> Callable[[IterState], None]:
        if name in self.algo.hooks:
            hook = self.algo.hooks[name]
            return lambda state: hook(self, state)
        fn = getattr(self, f"step_{name}", None)
        if fn is None:
            raise ValueError(f"Algorithm {self.algo.name!r} lists step {name!r}, which is neither a Trainer step "
                             f"nor in its hooks. Trainer steps: collect, rewards, advantages, update, sync, eval, "
                             f"log, checkpoint.")
        return fn

    def run_iteration(self, iteration: int) -> IterState:
        state = IterState(iteration)
        for name in self.steps:
            self.step_fn(name)(state)
        return state

    def step_collect(self, state: IterState) -> None:
        from agentgym.multiagent import split_seats
        from agentgym.rollout import collect, episode_specs

        t0 = time.perf_counter()
        specs = episode_specs(int(self.cfg.train.episodes_per_iter), int(getattr(self.algo_cfg, "group_size", 1)),
                              int(self.cfg.seed), iteration=state.iteration)
        self.model.eval()
        with torch.no_grad(), self.progress.bar(len(specs), "collect", unit="ep") as bar:
            trajectories, m = collect(self.pool, self.policy, specs, self.sampling,
                                      history_turns=int(self.cfg.policy.history_turns), progress=bar.on_episode)
        state.trajectories = [seat for traj in trajectories for seat in split_seats(traj)]   # self-play: one per seat
        state.metrics.update({f"rollout/{k}": v for k, v in m.items()})
        state.metrics["charts/rollout_time_s"] = time.perf_counter() - t0
        rest = getattr(self.policy, "sleep", None)    # a rollout engine frees its memory for the update (vLLM sleep mode)
        if callable(rest):
            rest()
        save_jsonl(state.trajectories[:SAMPLES_PER_ITER], self.run_dir / "trajectories" / f"iter_{state.iteration:06d}.jsonl")

    def step_rewards(self, state: IterState) -> None:
        """Default: the env's own rewards. Algorithms that shape rewards (CALM, SPA) replace this step."""
        turns = [t for traj in state.trajectories for t in traj.turns]
        if turns:
            state.metrics["rollout/invalid_action_rate"] = sum(bool(t.info.get("invalid_action")) for t in turns) / len(turns)

    def step_advantages(self, state: IterState) -> None:
        extras = {}
        if self.algo.value_head:
            extras["values"] = self._values([t for traj in state.trajectories for t in traj.turns])
        state.batch = self.algo.compute_advantages(state.trajectories, self.algo_cfg, **extras)
        state.metrics.update(state.batch.stats)
        if len(state.batch):
            state.metrics["charts/advantage_mean"] = float(state.batch.advantages.mean())
            state.metrics["charts/advantage_std"] = float(state.batch.advantages.std(unbiased=False))

    def _values(self, turns) -> torch.Tensor:
        from agentgym.learner import values
        mb, ctx = int(self.cfg.train.minibatch_size), self.ctx
        with torch.no_grad():
            out = [values(self.model, self.value_head, turns[i:i + mb], ctx.pad_id) for i in range(0, len(turns), mb)]
        return torch.cat(out).float().cpu() if out else torch.zeros(0)

    def step_update(self, state: IterState) -> None:
        t0 = time.perf_counter()
        epochs = int(self.cfg.train.epochs)
        if not getattr(self.policy, "exact_logprobs", True) and len(state.batch):
            state.batch, stats = rollout_correction(state.batch, self._learner_logprobs(state.batch.turns),
                                                    _sel(self.cfg, "algo.tis_cap", None))
            state.metrics.update(stats)
        with self.progress.bar(self.optimizer_steps(len(state.batch), epochs), "update", unit="step") as bar:
            state.metrics.update(self._update(state.batch, self.algo, self.algo_cfg, self.optimizer,
                                              epochs=epochs, salt=state.iteration, progress=bar))
        state.metrics["charts/update_time_s"] = time.perf_counter() - t0

    @property
    def micro_batch_size(self) -> int:
        """Turns per forward/backward (train.micro_batch_size; unset: the whole minibatch). Hooks that
        run their own model passes (SPA's estimator) use it too, so one setting bounds memory."""
        return int(_sel(self.cfg, "train.micro_batch_size", int(self.cfg.train.minibatch_size)))

    def optimizer_steps(self, turns: int, epochs: int) -> int:
        """How many optimizer steps ``_update`` takes on ``turns`` turns (for a progress bar's total)."""
        return epochs * math.ceil(turns / int(self.cfg.train.minibatch_size))

    def _update(self, batch: TurnBatch, algo: AlgoSpec, algo_cfg: Any, optimizer: torch.optim.Optimizer, *,
                epochs: int, salt: int, progress: Bar | None = None) -> dict[str, float]:
        """``epochs`` passes over ``batch`` in shuffled minibatches of train.minibatch_size turns
        (gradient accumulation over train.micro_batch_size), one clipped AdamW step each
        (``trainers/update.py``); each step ticks ``progress`` (a ``Progress.bar``) when given. The
        loop's own optimizer steps on the learner workers when train.learners > 1."""
        t = self.cfg.train
        if len(batch) == 0:
            return {}
        perms = permutations(len(batch), epochs, int(self.cfg.seed), salt)
        on_step = (lambda totals: progress.update(1, loss=totals["losses/loss"])) if progress is not None else None
        if self.learners is not None and optimizer is self.optimizer:
            out = self.learners.update(batch, algo.name, algo_cfg, perms, on_step=on_step)
            self.learners.pull_weights(self.model, self.value_head)
        else:
            params = [p for g in optimizer.param_groups for p in g["params"]]
            out = optimizer_pass(self.ctx, batch, algo.objective, algo_cfg, optimizer, params, perms=perms,
                                 minibatch=int(t.minibatch_size), micro=self.micro_batch_size,
                                 max_grad_norm=float(t.max_grad_norm), device=self.device, on_step=on_step,
                                 errors=lambda e, n: self._update_error(e, algo.name, n))
            if self.learners is not None:                 # a driver-side update (SFT, BC): the workers follow
                self.learners.push(self.model, self.value_head, None, None)
        out["charts/learning_rate"] = float(optimizer.param_groups[0]["lr"])
        return out

    def _update_error(self, e: BaseException, algo: str, turns: int) -> BaseException | None:
        """A clearer error for what a user can fix: a non-finite loss, out of device memory."""
        t = self.cfg.train
        if isinstance(e, FloatingPointError):
            return FloatingPointError(f"{algo} loss is not finite ({e}) at iteration {self.iteration + 1}; lower "
                                      f"train.lr (now {t.lr}) or check the rewards.")
        if isinstance(e, torch.cuda.OutOfMemoryError):
            return torch.cuda.OutOfMemoryError(
                f"out of {self.device} memory in the {algo} update on {turns} turns at once: set "
                f"train.micro_batch_size lower (now {self.micro_batch_size}; the optimizer step stays per "
                f"train.minibatch_size={t.minibatch_size}), or a smaller model / model.lora.enabled=true.")
        return None

    def _learner_logprobs(self, turns) -> torch.Tensor:
        """log pi(a|s) of ``turns`` under the learner's current weights ([N], no gradient, micro-batched)."""
        from agentgym.learner import action_logprobs
        ctx, micro = self.ctx, self.micro_batch_size
        self.model.eval()
        with torch.no_grad():
            out = [action_logprobs(self.model, turns[i:i + micro], ctx.temperature, ctx.pad_id).float().cpu()
                   for i in range(0, len(turns), micro)]
        return torch.cat(out)

    def _sync_policy(self) -> float | None:
        """Push the learner's weights to the rollout backend; HF shares the model and has nothing to push."""
        sync = getattr(self.policy, "sync_weights", None)
        return sync() if callable(sync) else None

    def step_sync(self, state: IterState) -> None:
        seconds = self._sync_policy()
        if seconds is not None:
            state.metrics["charts/weight_sync_s"] = seconds

    def _eval_schedule(self) -> str:
        every = int(self.cfg.eval.every)
        return "at the end" if every <= 0 else "every iteration" if every == 1 else f"every {every} iterations"

    def _eval_due(self, iteration: int) -> bool:
        every = int(self.cfg.eval.every)
        return iteration == int(self.cfg.train.iterations) or (every > 0 and iteration % every == 0)

    def step_eval(self, state: IterState) -> None:
        if self._eval_due(state.iteration):
            state.metrics.update(self.evaluate(state.iteration))

    def evaluate(self, iteration: int) -> dict[str, float]:
        """Greedy (eval.greedy) episodes on the fixed seeds eval.seed + i."""
        from agentgym.evaluate import evaluate

        t0 = time.perf_counter()
        self.model.eval()
        with torch.no_grad():
            result, trajs = evaluate(self.policy, self.cfg, pool=self.eval_pool(), progress=self.progress)
        save_jsonl(trajs[:SAMPLES_PER_ITER], self.run_dir / "trajectories" / f"eval_{iteration:06d}.jsonl")
        out = {f"eval/{k}": v for k, v in result.items()}
        out["charts/eval_time_s"] = time.perf_counter() - t0
        return out

    def eval_pool(self):
        """The training pool, or (with eval.env_kwargs, e.g. a held-out split) a second pool kept for the run."""
        if not self.cfg.eval.get("env_kwargs"):
            return self.pool
        if self._eval_pool is None:
            from agentgym.pool import pool_from_config
            self._eval_pool = pool_from_config(self.cfg, for_eval=True)
        return self._eval_pool

    def step_log(self, state: IterState) -> None:
        m = state.metrics
        self.counters["env_steps_total"] += int(m.get("rollout/env_steps", 0))
        self.counters["episodes_total"] += int(m.get("rollout/episodes", 0))
        m["rollout/env_steps_total"] = self.counters["env_steps_total"]
        m["rollout/episodes_total"] = self.counters["episodes_total"]
        m["charts/iteration"] = state.iteration
        m["charts/iter_time_s"] = time.perf_counter() - state.start
        m["charts/env_steps_per_s"] = m.get("rollout/env_steps", 0) / max(m["charts/iter_time_s"], 1e-9)
        m["charts/peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # this process (Linux: KiB)
        self.history.append(self.logger.log(state.iteration, m))
        self.iteration = state.iteration
        if self._iter_bar is not None:
            post = {"succ": m.get("rollout/success_rate"), "ret": m.get("rollout/mean_return"),
                    "eval_succ": m.get("eval/success_rate"), "eval_ret": m.get("eval/mean_return")}
            self._iter_bar.update(1, **{k: float(v) for k, v in post.items() if isinstance(v, (int, float))})

    def step_checkpoint(self, state: IterState) -> None:
        every = int(self.cfg.checkpoint.every)
        if state.iteration == int(self.cfg.train.iterations) or (every > 0 and state.iteration % every == 0):
            self.save_checkpoint()
        if self.history and self.history[-1]["step"] == state.iteration:
            self._save_if_best()

    def _save_if_best(self) -> None:
        """Keep checkpoints/best at the highest eval score so far: save it when the newest logged
        row is an evaluation that beats every earlier one (a tie keeps the earlier checkpoint)."""
        if self.history and self.history[-1] is best_eval_row(self.history):
            self.save_checkpoint(name=ckpt.BEST)

    # -- train / checkpoint / cleanup -------------------------------------------------------------
    def train(self) -> list[dict[str, Any]]:
        """Run the remaining iterations, then plot the curve and write summary.json; returns every
        logged metrics row."""
        cfg = self.cfg
        total = int(cfg.train.iterations)
        if self.iteration == 0 and int(cfg.eval.every) > 0 and not any(r["step"] == 0 and "eval/success_rate" in r
                                                                        for r in self.history):
            self.progress.stage(f"evaluating the starting policy ({start_label(self.history)}): "
                                f"{int(cfg.eval.episodes)} episodes")
            row = {"rollout/env_steps_total": 0, **self.evaluate(0)}
            self.history.append(self.logger.log(0, row))
            self._save_if_best()
        if self.iteration < total:
            self.progress.stage(f"training: iterations {self.iteration + 1}-{total}, "
                                f"{int(cfg.train.episodes_per_iter)} episodes each; eval {self._eval_schedule()}")
        with self.progress.bar(total, self.run_dir.name[:40], unit="it", initial=self.iteration) as bar:
            self._iter_bar = bar
            try:
                for it in range(self.iteration + 1, total + 1):
                    self.run_iteration(it)
            finally:
                self._iter_bar = None
        if self.history:
            plot_curve(self.logger.path, self.run_dir / "learning_curve.png")
        self.summary = self.write_summary()
        print(format_summary(self.summary))
        return self.history

    def write_summary(self) -> dict[str, Any]:
        """summary.json: the eval before (step 0) and after (last eval), the best eval and where its
        checkpoint is, the last checkpoint, and what the run cost (this process's time and memory)."""
        best, last = ckpt.best_checkpoint(self.run_dir), ckpt.latest_checkpoint(self.run_dir)
        summary = {"run_dir": str(self.run_dir), "env": str(self.cfg.env.id), "algo": str(self.cfg.algo.name),
                   "iterations": self.iteration, **summarize_evals(self.history),
                   "best_checkpoint": str(best) if best else None, "last_checkpoint": str(last) if last else None,
                   "env_steps": self.counters["env_steps_total"], "episodes": self.counters["episodes_total"],
                   "wall_time_s": time.perf_counter() - self._started,
                   "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                   "resumed_from": str(self._resumed_from) if self._resumed_from else None}
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary

    def save_checkpoint(self, name: str | None = None) -> Path:
        """Checkpoint ``iter_<iteration>`` (rotated by checkpoint.keep), or the folder ``name`` (``best``)."""
        if self.learners is not None:
            self.learners.pull_optimizer(self.optimizer)      # checkpoints stay single-process: any N resumes them
        state = {"history": self.history, "counters": dict(self.counters), "algo_state": self.algo_state,
                 "config": OmegaConf.to_container(self.cfg, resolve=True)}
        return ckpt.save_checkpoint(self.run_dir / "checkpoints", self.iteration, model=self.model,
                                    optimizer=self.optimizer, tokenizer=self.tokenizer, value_head=self.value_head,
                                    state=state, keep=None if name else int(self.cfg.checkpoint.keep), name=name)

    def _resume(self, path: Path) -> None:
        state = ckpt.load_checkpoint(path, model=self.model, optimizer=self.optimizer, value_head=self.value_head)
        self.iteration = int(state["iteration"])
        self.history = list(state["history"])
        self.counters = dict(state["counters"])
        self.algo_state = dict(state.get("algo_state") or {})
        self._resumed_from = path
        self.progress.stage(f"resumed {self.run_dir} from {path.name} (iteration {self.iteration})")

    def cleanup(self) -> None:
        for closer in (getattr(self.pool, "close", None), getattr(self._eval_pool, "close", None), self._close_expert,
                       getattr(self.policy, "close", None), getattr(self.learners, "close", None),
                       getattr(self.logger, "close", None)):
            if closer is not None:
                try:
                    closer()
                except Exception as e:  # cleanup must not hide the error that brought us here
                    print(f"agentgym: cleanup: {e!r}")
        self.pool = self._eval_pool = None


def train(cfg: DictConfig) -> list[dict[str, Any]]:
    """Setup, train and clean up; returns the metrics rows."""
    trainer = Trainer(cfg)
    try:
        trainer.setup()
        return trainer.train()
    finally:
        trainer.cleanup()


__all__ = ["IterState", "Trainer", "default_run_name", "seed_everything", "train"]
