"""Environment registry: ``register`` / ``make`` / ``spec``, in Gymnasium's style.

Ids look like Gymnasium's (``MiniHack-Room-5x5-v0``); every id is also registered with
Gymnasium as ``agentgym/<id>``. Entry points are ``"module:Class"`` strings, so no env
module is imported until ``make``. Third-party packages register through the entry-point
group ``agentgym.envs``: the entry point names a module (imported) or a callable (called),
which calls ``agentgym.register``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import warnings
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from agentgym.core import capabilities_of

GYM_NAMESPACE = "agentgym"
ENTRY_POINT_GROUP = "agentgym.envs"


@dataclass
class EnvSpec:
    id: str
    entry_point: str
    max_turns: int | None = None
    description: str = ""
    family: str = ""
    kwargs: dict[str, Any] = field(default_factory=dict)

    def load(self) -> type:
        module_name, _, attr = self.entry_point.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            raise EnvNotAvailable(
                f"Environment {self.id!r} could not be imported from {module_name!r}: {e}. "
                f"Install its dependencies (see docs/envs/{self.family or 'README'}.md)."
            ) from e
        return getattr(module, attr)


class UnknownEnvError(KeyError):
    def __str__(self) -> str:
        return self.args[0]


class EnvNotAvailable(ImportError):
    pass


# The registry is the one process-wide table, as in Gymnasium: registration is declarative
# (each family's __init__ is a flat list of register() calls) and idempotent.
_registry: dict[str, EnvSpec] = {}
_plugins_loaded = False


def register(id: str, entry_point: str, *, max_turns: int | None = None, description: str = "",
             family: str = "", **kwargs: Any) -> None:
    """Register an env id. ``kwargs`` become constructor defaults; ``max_turns`` sets the turn limit."""
    family = family or id.split("-")[0].lower()
    _registry[id] = EnvSpec(id, entry_point, max_turns, description, family, dict(kwargs))
    gym_id = f"{GYM_NAMESPACE}/{id}"
    if gym_id not in gym.registry:
        gym.register(id=gym_id, entry_point=entry_point, max_episode_steps=max_turns, kwargs=dict(kwargs),
                     disable_env_checker=True)


def load_plugins() -> None:
    """Import third-party env packages advertised under the ``agentgym.envs`` entry-point group (once)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
            if callable(obj):
                obj()
        except Exception as e:  # a broken plugin must not take the built-in envs down with it
            warnings.warn(f"agentgym: env plugin {ep.name!r} ({ep.value}) failed to load: {e!r}", stacklevel=2)


def registry() -> dict[str, EnvSpec]:
    load_plugins()
    return dict(_registry)


def resolve_id(name: str) -> str:
    """An exact id, an id without version (latest wins), or a family name (its first id)."""
    specs = registry()
    if name in specs:
        return name
    if name.startswith(GYM_NAMESPACE + "/") and name[len(GYM_NAMESPACE) + 1:] in specs:
        return name[len(GYM_NAMESPACE) + 1:]
    versions = sorted(i for i in specs if i.rsplit("-v", 1)[0] == name)
    if versions:
        return versions[-1]
    family = [i for i, s in specs.items() if s.family == name.lower()]
    if family:
        return family[0]
    known = ", ".join(sorted(specs)) or "(none)"
    families = ", ".join(sorted({s.family for s in specs.values()}))
    raise UnknownEnvError(
        f"Unknown environment {name!r}. Registered ids: {known}. Families: {families}. "
        f"Run `agentgym envs` to list them, or register your own with agentgym.register()."
    )


def spec(name: str) -> EnvSpec:
    return registry()[resolve_id(name)]


def make(name: str, *, max_turns: int | None = None, **kwargs: Any) -> gym.Env:
    """Build a registered env with the order check and the turn limit (TimeLimit on turns)."""
    s = spec(name)
    env_class = s.load()
    env = env_class(**{**s.kwargs, **kwargs})
    env = gym.wrappers.OrderEnforcing(env)
    limit = max_turns if max_turns is not None else s.max_turns
    if limit:
        env = gym.wrappers.TimeLimit(env, max_episode_steps=int(limit))
    return env


def describe(name: str) -> dict[str, Any]:
    """What `agentgym envs` prints: id, family, turn limit, capabilities, description."""
    s = spec(name)
    try:
        caps = capabilities_of(s.load())
    except EnvNotAvailable:
        caps = ["(not installed)"]
    return {"id": s.id, "family": s.family, "max_turns": s.max_turns, "capabilities": caps,
            "description": s.description}
