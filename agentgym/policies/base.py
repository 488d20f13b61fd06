"""The one interface every policy backend shares.

A backend turns a batch of ``Request``s (chat messages over the turn history, the
admissible actions and the env's info) into ``Action``s that carry the exact token ids
and log-probabilities the learner needs. Two action modes:

    generate  free text; the env parses it (ReAct style)
    choose    score each admissible action by its log-probability under the model and
              sample from softmax over those scores; ``choice_logprob`` is exact
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

MODES = ("generate", "choose")


@dataclass
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 32
    greedy: bool = False


@dataclass
class Request:
    messages: list[dict[str, str]]                 # chat messages: [{"role": ..., "content": ...}, ...]
    admissible_actions: list[str] | None = None
    info: dict[str, Any] = field(default_factory=dict)   # env info; holds "expert_action" when the pool computes it
    seed: int | None = None                        # per-request sampling seed: results do not depend on batching


@dataclass
class Action:
    text: str                                      # the action sent to the env
    prompt_ids: list[int] = field(default_factory=list)
    response_ids: list[int] = field(default_factory=list)
    response_logprobs: list[float] = field(default_factory=list)
    candidate_ids: list[list[int]] | None = None
    choice: int | None = None
    choice_logprob: float | None = None


@runtime_checkable
class Policy(Protocol):
    name: str
    mode: str

    def act(self, requests: list[Request], sampling: SamplingParams) -> list[Action]: ...
