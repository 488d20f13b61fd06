"""agentgym: a multi-turn LLM-agent RL gym and trainer.

    import agentgym
    env = agentgym.make("MiniHack-Room-5x5-v0")
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step("east")
"""

from agentgym.core import INFO_KEYS, CapabilityError, TextEnv, TextSpace, has_capability, require_capability
from agentgym.registry import EnvSpec, make, register, registry, resolve_id, spec

import agentgym.envs  # noqa: E402,F401  (registers the built-in env families; imports no engine)

__version__ = "0.1.0"
__all__ = ["INFO_KEYS", "CapabilityError", "EnvSpec", "TextEnv", "TextSpace", "has_capability", "make",
           "register", "registry", "require_capability", "resolve_id", "spec"]
