"""PPO over turns, with a value head on the language model and GAE over the turns of an episode.

Schulman et al., "Proximal Policy Optimization Algorithms", arXiv 1707.06347, eq. 7 (clipped
surrogate) and eq. 9 (with a value loss); Schulman et al., "High-Dimensional Continuous Control
Using Generalized Advantage Estimation", arXiv 1506.02438, eq. 16 (GAE).

One "step" is one policy turn: the state s_t is the prompt at turn t, the action a_t the turn's
whole action, r_t the env's reward for it. V(s_t) comes from ``learner.ValueHead`` on the LM.

    delta_t = r_t + gamma * V(s_{t+1}) * (1 - done_t) - V(s_t)
    A_t     = sum_l (gamma * lambda)^l delta_{t+l}          (eq. 16; computed backwards:
            = delta_t + gamma * lambda * (1 - done_t) * A_{t+1})
    R_t     = A_t + V(s_t)                                  (value target)
    rho_t   = pi_theta(a_t | s_t) / pi_old(a_t | s_t)
    L       = -mean_t min(rho_t A_t, clip(rho_t, 1 - eps, 1 + eps) A_t)    (eq. 7)
              + c_v * mean_t 1/2 (V_theta(s_t) - R_t)^2                    (eq. 9, without entropy)

The episode's last turn counts as done whether it terminated or hit the turn limit: the final
observation is never a decision state with a prompt, so there is no V(s_T) to bootstrap from,
and the turn limit is part of the task the agent sees.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Sequence

import torch

from agentgym.trainers import AlgoSpec, LearnerContext, TurnBatch, register_algo
from agentgym.trainers.batch import gae_batch
from agentgym.trajectory import Trajectory


@dataclass
class PPOConfig:
    gamma: float = 0.99                # discount over turns
    gae_lambda: float = 0.95           # GAE lambda: 0 = one-step TD, 1 = Monte Carlo
    clip_eps: float = 0.2              # ratio clip
    value_coef: float = 0.5            # c_v: weight of the value loss
    value_lr: float = 1.0e-3           # learning rate of the value head (its own optimizer group)
    normalize_advantages: bool = True  # standardize A over the iteration's batch
    clip_value: bool = False           # clip V_theta to V_old +- clip_eps (PPO2 style)


class PPOStats(NamedTuple):
    policy_loss: torch.Tensor
    value_loss: torch.Tensor
    approx_kl: torch.Tensor            # k3 estimate of KL(pi_old || pi_theta)
    clipfrac: torch.Tensor             # fraction of ratios outside [1 - eps, 1 + eps]
    ratio: torch.Tensor
    value_mean: torch.Tensor


def compute_advantages(trajectories: Sequence[Trajectory], cfg: PPOConfig, *, values: torch.Tensor) -> TurnBatch:
    """GAE per episode; ``values`` is V(s_t) for every flattened turn ([N], no gradient)."""
    return gae_batch(trajectories, values, cfg.gamma, cfg.gae_lambda, cfg.normalize_advantages, "PPO")


def loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, values: torch.Tensor,
         old_values: torch.Tensor, returns: torch.Tensor, cfg: PPOConfig) -> tuple[torch.Tensor, PPOStats]:
    """Clipped surrogate + value loss; every tensor is [B] (one entry per turn)."""
    log_ratio = logprobs - old_logprobs                                     # [B]
    ratio = torch.exp(log_ratio)
    pg1 = -advantages * ratio
    pg2 = -advantages * torch.clamp(ratio, 1 - cfg.clip_eps, 1 + cfg.clip_eps)
    policy_loss = torch.max(pg1, pg2).mean()
    v_err = (values - returns) ** 2                                         # [B]
    if cfg.clip_value:
        v_clipped = old_values + torch.clamp(values - old_values, -cfg.clip_eps, cfg.clip_eps)
        v_err = torch.max(v_err, (v_clipped - returns) ** 2)
    value_loss = 0.5 * v_err.mean()
    total = policy_loss + cfg.value_coef * value_loss
    with torch.no_grad():
        stats = PPOStats(policy_loss=policy_loss.detach(), value_loss=value_loss.detach(),
                         approx_kl=((ratio - 1) - log_ratio).mean(),
                         clipfrac=((ratio - 1).abs() > cfg.clip_eps).float().mean(),
                         ratio=ratio.mean(), value_mean=values.mean())
    return total, stats


def objective(ctx: LearnerContext, mb: TurnBatch, cfg: PPOConfig) -> tuple[torch.Tensor, PPOStats]:
    from agentgym import learner

    logp = learner.action_logprobs(ctx.model, mb.turns, ctx.temperature, ctx.pad_id)     # [B]
    v = learner.values(ctx.model, ctx.value_head, mb.turns, ctx.pad_id)                           # [B]
    return loss(logp, mb.old_logprobs, mb.advantages, v, mb.old_values, mb.returns, cfg)


register_algo("ppo", AlgoSpec(
    name="ppo", config_cls=PPOConfig, compute_advantages=compute_advantages, objective=objective,
    value_head=True, doc=__doc__,
))
