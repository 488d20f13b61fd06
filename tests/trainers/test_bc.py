"""Behaviour cloning: the token NLL and the re-tokenization of expert turns."""

import pytest
import torch

from agentgym.trainers import bc
from agentgym.trajectory import Trajectory, Turn


def test_nll_ignores_padding():
    logp = torch.tensor([[-1.0, -2.0, 9.0], [-3.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    out, stats = bc.loss(logp, mask)
    assert out.item() == pytest.approx(2.0) and stats.tokens.item() == 3


class FakeEncoder:
    def __init__(self):
        self.seen = []

    def prompt_ids(self, messages):
        self.seen.append(messages)
        return [len(messages)]

    def action_ids(self, text):
        return [ord(c) for c in text] + [0]


def test_tokenize_rebuilds_the_collector_prompt():
    turns = [Turn(observation=f"obs{t}", action=f"a{t}", info={"admissible_actions": ["a0", "a1", "a2"]})
             for t in range(3)]
    raw = Trajectory(env_id="x", instruction="find it", turns=turns)
    enc = FakeEncoder()
    out = bc.tokenize_trajectories([raw], enc, mode="choose", history_turns=1, system_prompt="SYS")
    assert raw.turns[0].response_ids == []                       # the input is not modified
    t2 = out[0].turns[2]
    assert t2.response_ids == [ord("a"), ord("2"), 0]
    msgs = enc.seen[2]                                           # system, obs1, a1, obs2 (+ actions)
    assert msgs[0]["content"].startswith("SYS") and "find it" in msgs[0]["content"]
    assert [m["content"] for m in msgs[1:3]] == ["obs1", "a1"] and msgs[3]["content"].startswith("obs2")
    assert "a2" in msgs[3]["content"]
    batch = bc.compute_advantages(out, bc.BCConfig())
    assert len(batch) == 3
    with pytest.raises(ValueError, match="tokenize_trajectories"):
        bc.compute_advantages([raw], bc.BCConfig())
