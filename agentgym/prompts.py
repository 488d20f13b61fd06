"""Chat prompts for a turn: system (task + answer format), the last few turns, the current observation.

    [system]     <system prompt>\\n\\nTask: <instruction>
    [user]       <observation t-k>          ┐ the last ``history_turns`` (observation, action)
    [assistant]  <action t-k>               ┘ pairs, oldest first
    [user]       <observation t>\\n\\nValid actions:\\n<a1>\\n<a2>...

Kept short on purpose: the default model is tiny and prompts should stay at a few hundred
tokens. Both action modes share the prompt; in ``choose`` mode the policy scores each
admissible action as the assistant's answer. An env replaces the system prompt with a
``system_prompt`` attribute on its class (``pool.system_prompt()`` reads it).
"""

from __future__ import annotations

from typing import Sequence

from agentgym.policies.base import MODES

DEFAULT_SYSTEM_PROMPT = ("You are an agent acting in a text environment. Each turn you see an observation "
                         "and the valid actions. Answer with exactly one action from the list and nothing else.")
OPEN_ACTIONS_SYSTEM_PROMPT = ("You are an agent acting in a text environment. Each turn you see an observation. "
                              "Answer with exactly one action and nothing else.")


def build_messages(instruction: str, history: Sequence[tuple[str, str]], observation: str,
                   admissible_actions: Sequence[str] | None, mode: str = "choose", history_turns: int = 1,
                   system_prompt: str | None = None) -> list[dict[str, str]]:
    """Chat messages for one decision. ``history`` holds every earlier (observation, action)
    pair of the episode; only the last ``history_turns`` are shown."""
    if mode not in MODES:
        raise ValueError(f"Unknown action mode {mode!r}: choose one of {', '.join(MODES)}.")
    if history_turns < 0:
        raise ValueError(f"history_turns must be >= 0, got {history_turns}.")
    if mode == "choose" and not admissible_actions:
        raise ValueError("choose mode needs admissible actions, but the env gave none for this observation; "
                         "use mode='generate' for envs with an open action space.")
    system = system_prompt or (DEFAULT_SYSTEM_PROMPT if admissible_actions else OPEN_ACTIONS_SYSTEM_PROMPT)
    if instruction:
        system = f"{system}\n\nTask: {instruction}"
    messages = [{"role": "system", "content": system}]
    shown = list(history)[-history_turns:] if history_turns else []
    for obs, action in shown:
        messages.append({"role": "user", "content": obs})
        messages.append({"role": "assistant", "content": action})
    current = observation
    if admissible_actions:
        current = f"{observation}\n\nValid actions:\n" + "\n".join(admissible_actions)
    messages.append({"role": "user", "content": current})
    return messages
