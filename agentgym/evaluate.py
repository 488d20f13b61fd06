"""Evaluation on fixed seeds: success rate and return for any policy (model, expert, random).

Eval seeds are ``cfg.eval.seed + i``; training seeds are drawn from ``cfg.seed`` and never
reach that range, so the two sets are disjoint.
"""

from __future__ import annotations

import statistics
from typing import Any

from omegaconf import DictConfig

from agentgym.policies.base import Policy, SamplingParams
from agentgym.pool import pool_from_config
from agentgym.rollout import EpisodeSpec, collect


def eval_specs(num_episodes: int, seed: int) -> list[EpisodeSpec]:
    return [EpisodeSpec(seed=seed + i, group=i, sample_seed=seed + i) for i in range(num_episodes)]


def summarize(trajectories) -> dict[str, float]:
    returns = [t.episode_return for t in trajectories]
    return {
        "success_rate": sum(t.success for t in trajectories) / max(len(trajectories), 1),
        "mean_return": statistics.fmean(returns) if returns else 0.0,
        "mean_turns": statistics.fmean(t.num_turns for t in trajectories) if trajectories else 0.0,
        "episodes": len(trajectories),
    }


def evaluate(policy: Policy, cfg: DictConfig, *, episodes: int | None = None, pool=None,
             progress: bool = False) -> tuple[dict[str, Any], list]:
    """Run ``episodes`` fixed-seed episodes of ``cfg.env.id`` with ``policy``; greedy unless eval.greedy=false."""
    episodes = episodes or cfg.eval.episodes
    s = cfg.policy.sampling
    sampling = SamplingParams(temperature=s.temperature, top_p=s.top_p, max_new_tokens=s.max_new_tokens,
                              greedy=bool(cfg.eval.greedy))
    own_pool = pool is None
    if own_pool:
        pool = pool_from_config(cfg, with_expert=policy.name == "expert", num_envs=min(cfg.rollout.num_envs, episodes))
    try:
        trajectories, metrics = collect(pool, policy, eval_specs(episodes, cfg.eval.seed), sampling,
                                        history_turns=cfg.policy.history_turns, progress=progress)
    finally:
        if own_pool:
            pool.close()
    result = summarize(trajectories)
    result["dropped_episodes"] = metrics.get("dropped_episodes", 0)
    return result, trajectories
