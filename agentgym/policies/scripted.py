"""Policies without a model: the env's scripted expert (warm starts, Agent-R) and uniform random
(baselines, smoke tests). Their actions carry text only, no token ids."""

from __future__ import annotations

import random

from agentgym.policies.base import Action, Request, SamplingParams

RANDOM_WORDS = ["look", "go", "north", "south", "east", "west", "take", "open", "search", "yes", "no", "wait"]


class ExpertPolicy:
    """Plays ``request.info["expert_action"]``, which the env pool fills from ``env.expert_action()``."""

    name = "expert"
    mode = "generate"

    def act(self, requests: list[Request], sampling: SamplingParams | None = None) -> list[Action]:
        actions = []
        for r in requests:
            if "expert_action" not in r.info or r.info["expert_action"] is None:
                raise KeyError(
                    "ExpertPolicy needs request.info['expert_action'], which is missing. Create the env pool with "
                    "with_expert=True so it calls env.expert_action() each step, and use an env that implements "
                    "expert_action() (`agentgym envs` lists capabilities)."
                )
            actions.append(Action(text=str(r.info["expert_action"])))
        return actions


class RandomPolicy:
    """Uniform over the admissible actions (a short random string when there are none).
    Each request draws from its own RNG seeded by ``request.seed``, else from the policy's seed."""

    name = "random"

    def __init__(self, seed: int = 0, mode: str = "choose"):
        self.mode = mode
        self._rng = random.Random(seed)

    def act(self, requests: list[Request], sampling: SamplingParams | None = None) -> list[Action]:
        actions = []
        for r in requests:
            rng = random.Random(r.seed) if r.seed is not None else random.Random(self._rng.getrandbits(63))
            if r.admissible_actions:
                actions.append(Action(text=rng.choice(r.admissible_actions)))
            else:
                actions.append(Action(text=" ".join(rng.choice(RANDOM_WORDS) for _ in range(rng.randint(1, 3)))))
        return actions
