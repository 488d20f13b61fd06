"""The learner's log-probs equal the rollout's (both modes), gradients flow, value head."""

import pytest
import torch

from agentgym import learner
from agentgym.learner import ValueHead, action_logprobs, old_token_logprobs, token_logprobs, values
from agentgym.models import apply_lora, build_tiny
from agentgym.policies import Request, SamplingParams, make_policy
from agentgym.trajectory import Turn

CORPUS = ["You see: a staircase down: 4 east, 3 south.", "go to the cabinet 1", "open the drawer", "take apple"] * 40
ACTIONS = ["go to the cabinet 1", "open the drawer", "take apple", "east"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = tmp_path_factory.mktemp("tiny")
    build_tiny(path, corpus=CORPUS, vocab_size=300)
    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def rollout(model, tok, mode, temperature=1.0, n=5):
    policy = make_policy("hf", model=model, tokenizer=tok, mode=mode)
    reqs = [Request([{"role": "user", "content": "You see: a staircase down. " * (i + 1)}],
                    admissible_actions=ACTIONS[: 2 + i % 3], seed=i) for i in range(n)]
    acts = policy.act(reqs, SamplingParams(temperature=temperature, max_new_tokens=6))
    return [Turn(observation="", action=a.text, prompt_ids=a.prompt_ids, response_ids=a.response_ids,
                 response_logprobs=a.response_logprobs, candidate_ids=a.candidate_ids, choice=a.choice,
                 choice_logprob=a.choice_logprob) for a in acts]


@pytest.mark.parametrize("mode", ["generate", "choose"])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_learner_logprobs_equal_rollout(tiny, mode, temperature):
    model, tok = tiny
    turns = rollout(model, tok, mode, temperature)
    new = action_logprobs(model, turns, temperature, tok.pad_token_id)
    old = torch.tensor([t.old_logprob() for t in turns])
    assert new.shape == (5,) and torch.allclose(new, old, atol=1e-4), (new, old)
    lp, mask = token_logprobs(model, turns, temperature, tok.pad_token_id)
    old_lp, old_mask = old_token_logprobs(turns)
    assert torch.equal(mask, old_mask) and torch.allclose(lp * mask, old_lp, atol=1e-4)
    assert torch.allclose((lp * mask).sum(1), new, atol=1e-4)
    if mode == "choose":
        assert mask.sum(1).tolist() == [1.0] * 5


@pytest.mark.parametrize("packed", [True, False])
def test_continuations_equal_one_full_forward(tiny, monkeypatch, packed):
    """Packed continuations (one row per prompt, block-causal 4D mask) and copied cache rows (kernels
    without custom masks) both give each token the log-prob of a plain forward of prompt + continuation,
    with left-padded prompts of different lengths, one-token and empty continuations in one group."""
    model, _ = tiny
    monkeypatch.setattr(learner, "_takes_4d_mask", lambda m: packed)
    gen = torch.Generator().manual_seed(0)

    def ids(n):
        return torch.randint(5, model.config.vocab_size, (n,), generator=gen).tolist()

    prompts = [ids(40), ids(9), ids(23)]
    conts = [[ids(5), ids(1), ids(3)], [ids(7), []], [ids(2), ids(4)]]
    with torch.no_grad():
        got = learner.continuation_logprobs(model, prompts, conts, 0.7, 0, max_rows=64)
        for p, cs, row in zip(prompts, conts, got):
            for c, lp in zip(cs, row):
                full = torch.log_softmax(model(input_ids=torch.tensor([p + c])).logits[0] / 0.7, -1)
                want = torch.stack([full[len(p) - 1 + j, t] for j, t in enumerate(c)]) if c else torch.zeros(0)
                assert lp.shape == (len(c),) and torch.allclose(lp, want, atol=1e-5), (lp, want)


def test_mixed_batch_and_wrong_temperature(tiny):
    model, tok = tiny
    turns = rollout(model, tok, "generate") + rollout(model, tok, "choose")
    new = action_logprobs(model, turns, 1.0, tok.pad_token_id)
    assert torch.allclose(new, torch.tensor([t.old_logprob() for t in turns]), atol=1e-4)
    other = action_logprobs(model, turns[:5], 2.0, tok.pad_token_id)
    assert not torch.allclose(other, new[:5], atol=1e-2)


def test_gradients_flow_full_and_lora(tiny):
    model, tok = tiny
    turns = rollout(model, tok, "choose") + rollout(model, tok, "generate")
    model.zero_grad()
    (-action_logprobs(model, turns, 1.0, tok.pad_token_id).mean()).backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)
    model.zero_grad()
    import copy

    lora = apply_lora(copy.deepcopy(model), {"r": 4, "alpha": 8, "target_modules": "all-linear"})
    lora.eval()
    lp = action_logprobs(lora, turns, 1.0, tok.pad_token_id)
    assert torch.allclose(lp, torch.tensor([t.old_logprob() for t in turns]), atol=1e-4)  # LoRA B starts at 0
    (-lp.mean()).backward()
    named = dict(lora.named_parameters())
    assert any(n.endswith("lora_B.default.weight") and p.grad.abs().sum() > 0 for n, p in named.items())
    assert all(p.grad is None for n, p in named.items() if "lora_" not in n)


def test_value_head(tiny):
    model, tok = tiny
    turns = rollout(model, tok, "choose")
    head = ValueHead.for_model(model)
    v = values(model, head, turns)
    assert v.shape == (5,) and torch.isfinite(v).all()
    v.sum().backward()
    assert head.linear.weight.grad.abs().sum() > 0
    # left padding does not change a prompt's value
    alone = values(model, head, turns[:1])
    assert torch.allclose(alone, v[:1], atol=1e-5)
    model.zero_grad()
