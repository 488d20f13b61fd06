"""PPO numerics: GAE against a hand-computed episode, clipped surrogate and value loss."""

import pytest
import torch

from agentgym.trainers import get_algo
from agentgym.trainers.batch import gae
from agentgym.trainers.ppo import PPOConfig, compute_advantages, loss
from agentgym.trajectory import Trajectory, Turn


def test_gae_by_hand():
    r, v = torch.tensor([0.0, 0.0, 1.0]), torch.tensor([0.5, 0.6, 0.7])
    A, R = gae(r, v, gamma=0.9, lam=0.8)
    # delta = [0.9*0.6-0.5, 0.9*0.7-0.6, 1-0.7] = [0.04, 0.03, 0.3]; A_t = delta_t + 0.72 A_{t+1}
    assert A.tolist() == pytest.approx([0.04 + 0.72 * (0.03 + 0.72 * 0.3), 0.03 + 0.72 * 0.3, 0.3], abs=1e-6)
    assert R.tolist() == pytest.approx((A + v).tolist(), abs=1e-6)
    A1, _ = gae(r, v, gamma=0.9, lam=1.0)       # Monte Carlo: G_t - V_t
    assert A1.tolist() == pytest.approx([0.81 - 0.5, 0.9 - 0.6, 1.0 - 0.7], abs=1e-6)
    A0, _ = gae(r, v, gamma=0.9, lam=0.0)       # one-step TD error
    assert A0.tolist() == pytest.approx([0.04, 0.03, 0.3], abs=1e-6)


def test_gae_stops_at_episode_boundaries():
    def ep(rewards):
        return Trajectory(env_id="x", turns=[Turn(observation="o", action="a", reward=x, choice=0, choice_logprob=-1.0)
                                             for x in rewards])
    cfg = PPOConfig(gamma=0.9, gae_lambda=0.8, normalize_advantages=False)
    batch = compute_advantages([ep([0.0, 0.0, 1.0]), ep([5.0])], cfg, values=torch.tensor([0.5, 0.6, 0.7, 1.0]))
    assert batch.advantages.tolist() == pytest.approx([0.21712, 0.246, 0.3, 4.0], abs=1e-5)
    assert batch.returns.tolist() == pytest.approx([0.71712, 0.846, 1.0, 5.0], abs=1e-5)
    norm = compute_advantages([ep([0.0, 0.0, 1.0]), ep([5.0])], PPOConfig(gamma=0.9, gae_lambda=0.8),
                              values=torch.tensor([0.5, 0.6, 0.7, 1.0]))
    assert norm.advantages.mean().item() == pytest.approx(0.0, abs=1e-6)
    assert norm.advantages.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-5)
    assert norm.returns.tolist() == pytest.approx(batch.returns.tolist())   # targets are never normalized
    with pytest.raises(ValueError, match="one value per turn"):
        compute_advantages([ep([1.0])], cfg, values=torch.zeros(2))


def test_clipped_surrogate_and_value_loss_by_hand():
    cfg = PPOConfig(clip_eps=0.2, value_coef=0.5)
    logp = torch.log(torch.tensor([1.5, 0.5, 1.1, 0.7])).requires_grad_()
    adv = torch.tensor([1.0, 1.0, -1.0, -1.0])
    values = torch.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    returns = torch.tensor([0.0, 2.0, 3.0, 6.0])
    out, stats = loss(logp, torch.zeros(4), adv, values, torch.zeros(4), returns, cfg)
    # policy: max(-rA, -clip(r)A) = [-1.2, -0.5, 1.1, 0.8] -> 0.05; value: 0.5 * mean([1, 0, 0, 4]) = 0.625
    assert stats.policy_loss.item() == pytest.approx(0.05, abs=1e-6)
    assert stats.value_loss.item() == pytest.approx(0.625, abs=1e-6)
    assert out.item() == pytest.approx(0.05 + 0.5 * 0.625, abs=1e-6)
    assert stats.clipfrac.item() == pytest.approx(0.75)
    out.backward()
    assert logp.grad.tolist() == pytest.approx([0.0, -0.5 / 4, 1.1 / 4, 0.0], abs=1e-6)
    assert values.grad.tolist() == pytest.approx([0.5 * 2 * x / 4 * 0.5 for x in [1.0, 0.0, 0.0, -2.0]], abs=1e-6)


def test_clipped_value_loss():
    cfg = PPOConfig(clip_eps=0.2, clip_value=True)
    values, returns = torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([0.0, 2.0, 3.0, 6.0])
    _, stats = loss(torch.zeros(4), torch.zeros(4), torch.zeros(4), values, torch.zeros(4), returns, cfg)
    # V clipped to 0 +- 0.2 -> errors max([1, 0, 0, 4], [0.04, 3.24, 7.84, 33.64])
    assert stats.value_loss.item() == pytest.approx(0.5 * (1 + 3.24 + 7.84 + 33.64) / 4, abs=1e-5)


def test_registered():
    spec = get_algo("ppo")
    assert spec.value_head and spec.config_cls is PPOConfig
