"""Suites: versioned manifests of what a leaderboard evaluates (configs/leaderboard/<name>@<version>.yaml).

A suite fixes, for every env entry, the env id and kwargs, the episode seeds, the turn limit, the
prompt history and the family's own score key; for all entries, the action mode, the sampling and
an episode's wall-clock limit. Its hash (sha256 of the canonical JSON of the manifest) goes into
every result line, so results of two versions of a suite are never mixed.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from agentgym.leaderboard.errors import LeaderboardError

ENTRY_KEYS = {"name", "id", "kwargs", "requires_env", "max_turns", "history_turns", "score", "score_name", "group",
              "seeds"}
SUITE_KEYS = {"suite", "version", "mode", "sampling", "episode_timeout_s", "envs"}


def suites_dir() -> Path:
    from agentgym.config import config_dir

    return config_dir() / "leaderboard"


def canonical_hash(data: Any) -> str:
    return "sha256:" + hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class SuiteEntry:
    name: str                          # unique within the suite: the board's column
    env_id: str
    seeds: tuple[int, ...]
    max_turns: int
    history_turns: int
    kwargs: dict[str, Any] = field(default_factory=dict)
    requires_env: str | None = None    # an environment variable naming the data folder the entry needs
    score: str | None = None           # the last step's info key with the family's own score
    score_name: str | None = None
    group: str | None = None           # the last step's info key that splits results (Werewolf's role)

    def missing(self) -> str | None:
        """Why this entry cannot run here (None when it can). The folder must exist and hold something,
        not only the variable: importing alfworld sets $ALFWORLD_DATA to ~/.cache/alfworld (an empty
        folder on many machines) whether or not the data is there."""
        folder = Path(os.environ.get(self.requires_env) or "/nonexistent") if self.requires_env else None
        if folder is not None and not (folder.is_dir() and any(folder.iterdir())):
            return (f"{self.name} needs ${self.requires_env} to name its data folder "
                    f"({os.environ.get(self.requires_env) or 'unset'}); it is skipped")
        return None


@dataclass(frozen=True)
class Suite:
    name: str
    version: int
    mode: str
    sampling: dict[str, Any]
    episode_timeout_s: float
    entries: tuple[SuiteEntry, ...]
    manifest: dict[str, Any]           # the file's content, as hashed
    hash: str

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"

    def skipped(self) -> dict[str, str]:
        """The entries that cannot run here, and why."""
        return {e.name: why for e in self.entries if (why := e.missing())}

    def entry(self, name: str) -> SuiteEntry:
        for e in self.entries:
            if e.name == name:
                return e
        raise KeyError(name)


def available_suites() -> list[str]:
    return sorted(p.stem for p in suites_dir().glob("*@*.yaml"))


def load_suite(spec: str | os.PathLike) -> Suite:
    """A suite by label (``core@1``) or by the path of a manifest file."""
    path = Path(spec)
    if not (path.suffix in (".yaml", ".yml") and path.is_file()):
        path = suites_dir() / f"{spec}.yaml"
        if not path.is_file():
            raise LeaderboardError(f"Unknown suite {str(spec)!r}: the suites are {', '.join(available_suites())} "
                                   f"(configs/leaderboard/), or pass the path of a manifest file.")
    manifest = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    return parse_suite(manifest, source=str(path))


def parse_suite(manifest: dict[str, Any], source: str = "suite") -> Suite:
    def fail(what: str) -> LeaderboardError:
        return LeaderboardError(f"{source}: {what}")

    if not isinstance(manifest, dict) or (unknown := set(manifest) - SUITE_KEYS):
        raise fail(f"unknown keys {sorted(unknown) if isinstance(manifest, dict) else manifest!r}; "
                   f"a suite has {sorted(SUITE_KEYS)}")
    for key in ("suite", "version", "envs"):
        if key not in manifest:
            raise fail(f"missing {key!r}")
    entries = []
    for raw in manifest["envs"]:
        if unknown := set(raw) - ENTRY_KEYS:
            raise fail(f"env entry {raw.get('name')!r} has unknown keys {sorted(unknown)}; valid: {sorted(ENTRY_KEYS)}")
        seeds = raw.get("seeds")
        if isinstance(seeds, dict):
            seeds = list(range(int(seeds["start"]), int(seeds["start"]) + int(seeds["count"])))
        if not seeds or len(set(seeds)) != len(seeds):
            raise fail(f"env entry {raw.get('name')!r} needs distinct seeds (a list, or {{start, count}})")
        entries.append(SuiteEntry(name=str(raw["name"]), env_id=str(raw["id"]), seeds=tuple(int(s) for s in seeds),
                                  max_turns=int(raw["max_turns"]), history_turns=int(raw.get("history_turns", 1)),
                                  kwargs=dict(raw.get("kwargs") or {}), requires_env=raw.get("requires_env"),
                                  score=raw.get("score"), score_name=raw.get("score_name"), group=raw.get("group")))
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        raise fail(f"env entry names must be unique, got {names}")
    mode = str(manifest.get("mode", "choose"))
    if mode not in ("choose", "generate"):
        raise fail(f"mode must be 'choose' or 'generate', got {mode!r}")
    sampling = {"temperature": 1.0, "top_p": 1.0, "max_new_tokens": 32, "greedy": False,
                **(manifest.get("sampling") or {})}
    return Suite(name=str(manifest["suite"]), version=int(manifest["version"]), mode=mode, sampling=sampling,
                 episode_timeout_s=float(manifest.get("episode_timeout_s", 600)), entries=tuple(entries),
                 manifest=manifest, hash=canonical_hash(manifest))
