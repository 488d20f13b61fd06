"""GRPO: Group Relative Policy Optimization, with outcome supervision over multi-turn episodes.

Shao et al., "DeepSeekMath: Pushing the Limits of Mathematical Reasoning in Open Language
Models", arXiv 2402.03300, eq. 3 (objective), eq. 4 (KL estimator), §4.1.2 (outcome supervision).

For each start state q (an env seed) sample a group of G episodes o_1..o_G with pi_old and get
their returns R_1..R_G. Outcome supervision gives every policy turn t of episode i the same
advantage

    A_i = (R_i - mean(R_1..R_G)) / (std(R_1..R_G) + eps)        (std over the group, ddof=0)

and the loss (to minimise) over a minibatch of turns (i, t), with h_{i,t} the prompt at turn t:

    rho_{i,t} = pi_theta(a_{i,t} | h_{i,t}) / pi_old(a_{i,t} | h_{i,t})
    L = -mean_{i,t} [ min(rho A_i, clip(rho, 1 - eps_clip, 1 + eps_clip) A_i) ]
        + beta * mean_{i,t} [ pi_ref/pi_theta - log(pi_ref/pi_theta) - 1 ]       (eq. 4, k3 estimator)

The ratio is per turn (the whole action a_{i,t}): in choose mode pi(a|h) is the exact softmax over
the admissible actions, so rho is the true importance weight of the one decision taken; in generate
mode it is the product of the action's token ratios, so clipping bounds how much the whole action's
probability may move. ``token_level=True`` (generate mode) uses the paper's per-token ratio and
1/|a| token mean instead. ``normalize_std=False`` drops the std division (Dr. GRPO, arXiv 2503.20783).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import torch

from agentgym.trainers import AlgoSpec, LearnerContext, TurnBatch, flatten_turns, register_algo
from agentgym.trajectory import Trajectory


@dataclass
class GRPOConfig:
    group_size: int = 8           # episodes per start state (env seed)
    clip_eps: float = 0.2         # PPO-style ratio clip
    kl_coef: float = 0.0          # beta: weight of KL(pi_theta || pi_ref); 0 keeps no reference model
    normalize_std: bool = True    # divide by the group's std (False: Dr. GRPO)
    eps: float = 1e-6             # added to the std
    token_level: bool = False     # generate mode only: per-token ratio and token mean (DeepSeekMath eq. 3)


class GRPOStats(NamedTuple):
    policy_loss: torch.Tensor     # the clipped surrogate term
    kl: torch.Tensor              # k3 estimate of KL(pi_theta || pi_ref); 0 when kl_coef == 0
    approx_kl: torch.Tensor       # k3 estimate of KL(pi_old || pi_theta): how far this update moved
    clipfrac: torch.Tensor        # fraction of ratios outside [1 - eps, 1 + eps]
    ratio: torch.Tensor           # mean ratio


def group_advantages(returns: Sequence[float], groups: Sequence[int], *, normalize_std: bool = True,
                     eps: float = 1e-6) -> tuple[torch.Tensor, float]:
    """Per-episode A_i = (R_i - mean_g) / (std_g + eps); also the fraction of groups with one
    distinct return (no learning signal)."""
    R = torch.tensor(returns, dtype=torch.float64)
    A = torch.zeros_like(R)
    members: dict[int, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        members[g].append(i)
    flat = 0
    for idx in members.values():
        r = R[idx]
        if torch.all(r == r[0]):          # no signal (also a group of one): exactly 0, even with eps=0
            flat += 1
            continue
        a = r - r.mean()
        A[idx] = a / (r.std(unbiased=False) + eps) if normalize_std else a
    return A.float(), flat / max(len(members), 1)


def compute_advantages(trajectories: Sequence[Trajectory], cfg: GRPOConfig, **_) -> TurnBatch:
    """Episode advantages spread over every turn of the episode."""
    A, flat = group_advantages([t.episode_return for t in trajectories], [t.group for t in trajectories],
                               normalize_std=cfg.normalize_std, eps=cfg.eps)
    turns, episode = flatten_turns(trajectories)
    return TurnBatch(turns=turns, advantages=A[episode], old_logprobs=TurnBatch.old_logprobs_of(turns),
                     episode=episode, stats={"charts/flat_group_frac": flat})  # groups with all-equal returns


def loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, cfg: GRPOConfig, *,
         ref_logprobs: torch.Tensor | None = None, mask: torch.Tensor | None = None
         ) -> tuple[torch.Tensor, GRPOStats]:
    """Clipped surrogate + beta * KL. Shapes: [B] per turn, or [B, L] per token with ``mask``
    [B, L] (1 on action tokens); ``advantages`` is [B] either way."""
    adv = advantages if mask is None else advantages[:, None]          # [B] or [B, 1]
    log_ratio = logprobs - old_logprobs                                # [B] or [B, L]
    ratio = torch.exp(log_ratio)
    surr = torch.min(ratio * adv, torch.clamp(ratio, 1 - cfg.clip_eps, 1 + cfg.clip_eps) * adv)
    per = -surr
    kl = torch.zeros_like(per)
    if cfg.kl_coef > 0:
        if ref_logprobs is None:
            raise ValueError("kl_coef > 0 needs ref_logprobs (the reference policy's log-probs).")
        d = ref_logprobs - logprobs                                    # log(pi_ref / pi_theta)
        kl = torch.exp(d) - d - 1                                      # eq. 4
        per = per + cfg.kl_coef * kl

    def mean(x: torch.Tensor) -> torch.Tensor:                         # turn mean (token mean per turn first)
        if mask is None:
            return x.mean()
        m = mask.to(x.dtype)
        return ((x * m).sum(-1) / m.sum(-1).clamp(min=1)).mean()

    with torch.no_grad():
        stats = GRPOStats(policy_loss=mean(-surr), kl=mean(kl), approx_kl=mean((ratio - 1) - log_ratio),
                          clipfrac=mean(((ratio - 1).abs() > cfg.clip_eps).float()), ratio=mean(ratio))
    return mean(per), stats


def objective(ctx: LearnerContext, mb: TurnBatch, cfg: GRPOConfig) -> tuple[torch.Tensor, GRPOStats]:
    from agentgym import learner

    if cfg.token_level and ctx.mode == "generate":
        logp, mask = learner.token_logprobs(ctx.model, mb.turns, ctx.temperature, ctx.pad_id)      # [B, L]
        old, _ = learner.old_token_logprobs(mb.turns, logp.device)                                # [B, L]
        ref = None
        if cfg.kl_coef > 0:
            with ctx.reference() as ref_model:
                ref, _ = learner.token_logprobs(ref_model, mb.turns, ctx.temperature, ctx.pad_id)
        return loss(logp, old, mb.advantages, cfg, ref_logprobs=ref, mask=mask)

    logp = learner.action_logprobs(ctx.model, mb.turns, ctx.temperature, ctx.pad_id)             # [B]
    ref = None
    if cfg.kl_coef > 0:
        with ctx.reference() as ref_model:
            ref = learner.action_logprobs(ref_model, mb.turns, ctx.temperature, ctx.pad_id)
    return loss(logp, mb.old_logprobs, mb.advantages, cfg, ref_logprobs=ref)


register_algo("grpo", AlgoSpec(
    name="grpo", config_cls=GRPOConfig, compute_advantages=compute_advantages, objective=objective,
    needs_reference=lambda cfg: cfg.kl_coef > 0, doc=__doc__,
))
