"""Evaluation on fixed seeds: success rate and return for any policy (model, expert, random).

Eval seeds are ``cfg.eval.seed + i``, the same for every policy and run. Training seeds are
31-bit hashes of (seed, iteration, group) (``rollout.episode_specs``), so they meet an eval seed
only by rare chance.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from agentgym.policies.base import Policy, SamplingParams
from agentgym.pool import pool_from_config
from agentgym.rollout import EpisodeSpec, collect


def eval_specs(num_episodes: int, seed: int) -> list[EpisodeSpec]:
    return [EpisodeSpec(seed=seed + i, group=i, sample_seed=seed + i) for i in range(num_episodes)]


def evaluate(policy: Policy, cfg: DictConfig, *, episodes: int | None = None, pool=None,
             progress: bool = False) -> tuple[dict[str, Any], list]:
    """Run ``episodes`` fixed-seed episodes of ``cfg.env.id`` (with ``eval.env_kwargs`` merged over
    ``env.kwargs``) with ``policy``; sampled (seeded per episode) unless eval.greedy=true.
    A given ``pool`` must already be built with those kwargs (``pool_from_config(for_eval=True)``)."""
    episodes = episodes or cfg.eval.episodes
    s = cfg.policy.sampling
    sampling = SamplingParams(temperature=s.temperature, top_p=s.top_p, max_new_tokens=s.max_new_tokens,
                              greedy=bool(cfg.eval.greedy))
    own_pool = pool is None
    if own_pool:
        pool = pool_from_config(cfg, with_expert=policy.name == "expert", num_envs=min(cfg.rollout.num_envs, episodes),
                                for_eval=True)
    try:
        trajectories, metrics = collect(pool, policy, eval_specs(episodes, cfg.eval.seed), sampling,
                                        history_turns=cfg.policy.history_turns, progress=progress)
    finally:
        if own_pool:
            pool.close()
    result = {k: metrics[k] for k in ("success_rate", "mean_return", "mean_turns", "episodes", "dropped_episodes")}
    return result, trajectories
