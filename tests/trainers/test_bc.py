"""Behaviour cloning: the loss, the re-tokenization of expert turns, and choose-mode cloning ranks the expert first."""

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
    assert t2.candidate_ids == [[ord("a"), ord(str(j)), 0] for j in range(3)] and t2.choice == 2   # a choice among 3
    msgs = enc.seen[2]                                           # system, obs1, a1, obs2 (+ actions)
    assert msgs[0]["content"].startswith("SYS") and "find it" in msgs[0]["content"]
    assert [m["content"] for m in msgs[1:3]] == ["obs1", "a1"] and msgs[3]["content"].startswith("obs2")
    assert "a2" in msgs[3]["content"]
    batch = bc.compute_advantages(out, bc.BCConfig())
    assert len(batch) == 3
    with pytest.raises(ValueError, match="tokenize_trajectories"):
        bc.compute_advantages([raw], bc.BCConfig())


def test_action_outside_the_admissible_list_falls_back_to_token_nll():
    turns = [Turn(observation="o", action="free text", info={"admissible_actions": ["a0", "a1"]})]
    out = bc.tokenize_trajectories([Trajectory(env_id="x", turns=turns)], FakeEncoder(), mode="choose",
                                   history_turns=0, system_prompt=None)
    assert out[0].turns[0].candidate_ids is None and out[0].turns[0].choice is None
    gen = bc.tokenize_trajectories([Trajectory(env_id="x", turns=[Turn(observation="o", action="a1",
                                                                       info={"admissible_actions": ["a0", "a1"]})])],
                                   FakeEncoder(), mode="generate", history_turns=0, system_prompt=None)
    assert gen[0].turns[0].candidate_ids is None                 # generate mode clones the tokens


def test_choose_mode_cloning_ranks_the_expert_action_first(tmp_path):
    """A short wrong action starts with the higher score (fewer tokens); cloning the choice must flip that."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from agentgym.learner import action_logprobs
    from agentgym.models import build_tiny
    from agentgym.policies import make_policy
    from agentgym.trainers import LearnerContext

    actions = ["go", "go to the cabinet and open it"]
    build_tiny(tmp_path, corpus=[f"room {i}. " + " ".join(actions) for i in range(50)], vocab_size=400)
    model, tok = AutoModelForCausalLM.from_pretrained(tmp_path), AutoTokenizer.from_pretrained(tmp_path)
    policy = make_policy("hf", model=model, tokenizer=tok, mode="choose")
    trajs = [Trajectory(env_id="x", instruction="open the cabinet",
                        turns=[Turn(observation=f"room {i}.", action=actions[1],
                                    info={"admissible_actions": actions}) for i in range(4)])]
    turns = bc.tokenize_trajectories(trajs, policy, mode="choose", history_turns=0, system_prompt=None)[0].turns
    p_expert = lambda: action_logprobs(model, turns, 1.0, policy.pad_id).exp()      # noqa: E731
    assert p_expert().mean() < 0.5                               # the short action wins before cloning
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    batch = bc.compute_advantages([Trajectory(env_id="x", turns=turns)], bc.BCConfig())
    for _ in range(40):
        loss, stats = bc.objective(LearnerContext(model=model, pad_id=policy.pad_id), batch, bc.BCConfig())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert stats.tokens.item() == 4                              # one decision per turn
    assert p_expert().min() > 0.9
