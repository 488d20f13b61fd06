"""Policy backends behind one interface (``agentgym.policies.base``): ``make_policy`` builds one."""

from __future__ import annotations

from agentgym.policies.base import MODES, Action, Policy, Request, SamplingParams

BACKENDS = ("hf", "expert", "random")
PLANNED = {
    "vllm": "the vLLM backend (GPU rollouts) is planned but not implemented yet; use policy.backend=hf "
            "(transformers, runs on CPU or one GPU) for now.",
    "openai": "the OpenAI-compatible API backend is planned but not implemented yet; use policy.backend=hf with "
              "a local model (model.path=...), or policy.backend=expert / random for scripted baselines.",
}


def make_policy(backend: str, *, model=None, tokenizer=None, mode: str = "choose", seed: int = 0, **kw) -> Policy:
    """Build a policy: ``hf`` needs ``model`` and ``tokenizer`` (see ``agentgym.models.load_model``);
    extra keywords go to the backend (``device`` for hf)."""
    if mode not in MODES:
        raise ValueError(f"policy mode must be one of {MODES}, got {mode!r}")
    if backend == "hf":
        from agentgym.policies.hf import HFPolicy

        if model is None or tokenizer is None:
            raise ValueError("policy backend 'hf' needs model= and tokenizer= "
                             "(model, tokenizer = agentgym.models.load_model(cfg.model.path))")
        return HFPolicy(model, tokenizer, mode=mode, seed=seed, **kw)
    if backend == "expert":
        from agentgym.policies.scripted import ExpertPolicy

        return ExpertPolicy()
    if backend == "random":
        from agentgym.policies.scripted import RandomPolicy

        return RandomPolicy(seed=seed, mode=mode)
    if backend in PLANNED:
        raise NotImplementedError(f"policy backend {backend!r}: {PLANNED[backend]}")
    raise ValueError(f"unknown policy backend {backend!r}; valid backends: {', '.join(BACKENDS)} "
                     f"(planned: {', '.join(PLANNED)})")


__all__ = ["Action", "BACKENDS", "MODES", "Policy", "Request", "SamplingParams", "make_policy"]
