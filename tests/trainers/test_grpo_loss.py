"""GRPO numerics: group-relative advantages and the clipped surrogate (values computed by hand)."""

import math

import pytest
import torch

from agentgym.trainers import get_algo
from agentgym.trainers.grpo import GRPOConfig, compute_advantages, group_advantages, loss
from agentgym.trajectory import Trajectory, Turn


def traj(ret: float, group: int, turns: int = 1, logprob: float = -0.5) -> Trajectory:
    ts = [Turn(observation="o", action="a", reward=0.0, choice=0, choice_logprob=logprob) for _ in range(turns)]
    ts[-1].reward = ret
    return Trajectory(env_id="x", turns=ts, group=group)


def test_equal_returns_give_zero_advantage():
    A, flat = group_advantages([1.0, 1.0, 1.0, 1.0], [0, 0, 0, 0])
    assert torch.equal(A, torch.zeros(4))
    assert flat == 1.0


def test_advantage_sign_and_normalization():
    A, flat = group_advantages([1.0, 0.0, 0.0, 0.0], [0, 0, 0, 0], eps=0.0)
    std = math.sqrt(0.25 * 0.75)                    # population std of [1, 0, 0, 0]
    assert A.tolist() == pytest.approx([0.75 / std, -0.25 / std, -0.25 / std, -0.25 / std], rel=1e-6)
    assert A[0] > 0 and (A[1:] < 0).all()
    assert float(A.sum()) == pytest.approx(0.0, abs=1e-6)
    assert flat == 0.0
    A, _ = group_advantages([1.0, 0.0, 0.0, 0.0], [0, 0, 0, 0], normalize_std=False)
    assert A.tolist() == pytest.approx([0.75, -0.25, -0.25, -0.25])


def test_groups_are_independent():
    A, flat = group_advantages([1.0, 0.0, 5.0, 5.0], [0, 0, 1, 1], eps=0.0)
    assert A.tolist() == pytest.approx([1.0, -1.0, 0.0, 0.0])
    assert flat == 0.5


def test_advantage_spread_over_every_turn():
    batch = compute_advantages([traj(1.0, 0, turns=3), traj(0.0, 0, turns=1)], GRPOConfig(eps=0.0))
    assert batch.advantages.tolist() == pytest.approx([1.0, 1.0, 1.0, -1.0])
    assert batch.episode.tolist() == [0, 0, 0, 1]
    assert batch.old_logprobs.tolist() == pytest.approx([-0.5] * 4)
    sub = batch.select([3, 0])
    assert sub.advantages.tolist() == pytest.approx([-1.0, 1.0]) and len(sub) == 2


def test_clipped_surrogate_by_hand():
    cfg = GRPOConfig(clip_eps=0.2)
    ratio = torch.tensor([1.5, 0.5, 1.1, 0.7])
    logp = torch.log(ratio).requires_grad_()
    adv = torch.tensor([1.0, 1.0, -1.0, -1.0])
    out, stats = loss(logp, torch.zeros(4), adv, cfg)
    # -min(rA, clip(r)A): -1.2 (clipped), -0.5, +1.1, +0.8 (clipped); mean 0.05
    assert out.item() == pytest.approx(0.05, abs=1e-6)
    assert stats.clipfrac.item() == pytest.approx(0.75)
    assert stats.kl.item() == 0.0
    out.backward()
    # no gradient where the clipped branch is taken; d/dlogp (-rA)/4 elsewhere
    assert logp.grad.tolist() == pytest.approx([0.0, -0.5 / 4, 1.1 / 4, 0.0], abs=1e-6)


def test_ratio_one_means_no_kl_no_clip():
    out, stats = loss(torch.full((3,), -1.0), torch.full((3,), -1.0), torch.tensor([1.0, -2.0, 1.0]), GRPOConfig())
    assert out.item() == pytest.approx(0.0, abs=1e-7)
    assert stats.approx_kl.item() == pytest.approx(0.0, abs=1e-7) and stats.clipfrac.item() == 0.0


def test_kl_penalty_k3():
    cfg = GRPOConfig(kl_coef=0.1)
    logp = torch.zeros(2)
    ref = torch.full((2,), math.log(2.0))            # pi_ref / pi_theta = 2
    out, stats = loss(logp, logp, torch.zeros(2), cfg, ref_logprobs=ref)
    k3 = 2.0 - math.log(2.0) - 1.0
    assert stats.kl.item() == pytest.approx(k3, rel=1e-6)
    assert out.item() == pytest.approx(0.1 * k3, rel=1e-6)
    with pytest.raises(ValueError, match="ref_logprobs"):
        loss(logp, logp, torch.zeros(2), cfg)


def test_token_level_mask():
    cfg = GRPOConfig(clip_eps=0.2)
    logp = torch.tensor([[math.log(1.5), 0.0, 5.0], [0.0, 0.0, 0.0]])   # 5.0 is padding: must not count
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    out, stats = loss(logp, torch.zeros(2, 3), torch.tensor([1.0, -1.0]), cfg, mask=mask)
    # row 0: mean(-1.2, -1.0) = -1.1; row 1: +1; mean -0.05
    assert out.item() == pytest.approx(-0.05, abs=1e-6)
    assert stats.clipfrac.item() == pytest.approx(0.25)


def test_registered():
    spec = get_algo("grpo")
    assert spec.config_cls is GRPOConfig and not spec.value_head
    assert spec.needs_reference(GRPOConfig(kl_coef=0.1)) and not spec.needs_reference(GRPOConfig())
    with pytest.raises(KeyError, match="Unknown algorithm 'nope'.*Available"):
        get_algo("nope")
