"""Where ALFWorld games come from: a standard data folder, or the embedded generated set.

Splits follow ALFWorld's names: ``train`` (json_2.1.1/train; the embedded generated games when
the folder has none), ``eval_in_distribution`` (valid_seen), ``eval_out_of_distribution``
(valid_unseen). Games are collected the way ``AlfredTWEnv.collect_game_files`` does (skip
movable/sliced trials, filter task types, keep ``solvable`` games) but in sorted order, so a seed
picks the same game on every machine. A game file that cannot be read is skipped with a warning
that names it.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

from agentgym.envs.alfworld import generate as gen

SPLITS = {"train": "train", "eval_in_distribution": "valid_seen", "eval_out_of_distribution": "valid_unseen"}
EMBEDDED_PROBLEMS = gen.RESOURCES / "problems.json"
CACHE = Path(os.environ.get("AGENTGYM_CACHE", Path.home() / ".cache" / "agentgym")) / "alfworld"

MISSING = ("No ALFWorld data folder: {what}.\n"
           "Get the real games with `alfworld-download` (needs internet; then set ALFWORLD_DATA to the folder it "
           "prints, which holds json_2.1.1/ and logic/), point env.kwargs.data_dir at a copy, or make training games "
           "offline with `agentgym data alfworld --generate N --out DIR` and set ALFWORLD_DATA=DIR.")


def parse_task_types(spec) -> list[str] | None:
    """None/"all" -> None; ids (1-6) or names, one, a list or a comma-separated string -> names.

    A single id arrives as an int from the command line (``env.kwargs.task_types=1``)."""
    if spec is None or spec == "all":
        return None
    if isinstance(spec, int):
        spec = [spec]
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    names = []
    for item in items:
        item = str(item).strip()
        if item.isdigit() and int(item) in gen.TASK_TYPES:
            names.append(gen.TASK_TYPES[int(item)])
        elif item in gen.TASK_TYPES.values():
            names.append(item)
        else:
            raise ValueError(f"unknown ALFWorld task type {item!r}: use 1-6 or one of {', '.join(gen.TASK_TYPES.values())}.")
    return names


def data_root(data_dir: str | None = None, required: bool = True) -> Path | None:
    """``data_dir``, else $ALFWORLD_DATA. None (or a clear error when ``required``) if neither is set."""
    raw = data_dir or os.environ.get("ALFWORLD_DATA")
    if not raw:
        if required:
            raise FileNotFoundError(MISSING.format(what="neither env.kwargs.data_dir nor ALFWORLD_DATA is set"))
        return None
    root = Path(os.path.expandvars(str(raw))).expanduser()
    if not root.is_dir():
        if required:
            raise FileNotFoundError(MISSING.format(what=f"{root} does not exist"))
        return None
    return root


def collect_games(split: str, data_dir: str | None = None, task_types: list[str] | None = None) -> list[str]:
    """Solvable game files of ``split`` in the data folder, sorted; raises when there are none."""
    if split not in SPLITS:
        raise ValueError(f"unknown ALFWorld split {split!r}: use one of {', '.join(SPLITS)}.")
    root = data_root(data_dir)
    folder = root / "json_2.1.1" / SPLITS[split]
    if not folder.is_dir():
        raise FileNotFoundError(MISSING.format(what=f"{folder} does not exist (split {split})"))
    found = []
    for traj in sorted(folder.glob("**/traj_data.json")):
        path = traj.parent
        if "movable" in str(path) or "Sliced" in str(path):
            continue
        game = path / "game.tw-pddl"
        if not game.exists():
            continue
        task = path.parent.name.split("-")[0]
        if task_types and task not in task_types:
            continue
        try:
            with open(game) as f:
                solvable = json.load(f).get("solvable")
        except (OSError, ValueError) as e:
            warnings.warn(f"ALFWorld: skipping corrupt game file {game} ({type(e).__name__}: {e})", stacklevel=2)
            continue
        if solvable:
            found.append(str(game))
    if not found:
        raise FileNotFoundError(MISSING.format(what=f"no solvable games under {folder}"))
    return found


def embedded_problems(task_types: list[str] | None = None) -> list[dict]:
    rows = json.loads(EMBEDDED_PROBLEMS.read_text())
    return [r for r in rows if not task_types or r["task_type"] in task_types]


def embedded_game(row: dict, scenes: dict[str, str] | None = None) -> str:
    """The game file of one embedded problem, built on first use under the cache folder."""
    fields = {k: v for k, v in row.items() if k != "walkthrough"}
    problem = gen.Problem(**fields)
    path = CACHE / "generated" / problem.name / "game.tw-pddl"
    if not path.exists():
        scenes = scenes if scenes is not None else gen.load_scenes()
        gen.write_game(problem, scenes[problem.scene_key], CACHE / "generated", row["walkthrough"])
    return str(path)
