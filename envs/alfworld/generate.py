"""New ALFRED-style training problems, made into ALFWorld games with ALFWorld's own logic.

A problem is ALFRED's pair (``initial_state.pddl``, ``traj_data.json``): a scene state (objects,
receptacles, where everything is) and a goal of one of the six ALFWorld task types. We take scene
states from ALFRED's seen (training-distribution) floorplans, draw a new goal that the scene
supports (an object type that exists, a receptacle that can hold it, a sink / microwave / fridge /
lamp where the task needs one), write the goal with ALFRED's own PDDL goal library
(``alfworld.gen.goal_library``) and the task sentence with ALFWorld's ``add_task_to_grammar``, as
``alfworld-generate`` does. A problem is kept only where Fast Downward (textworld's PDDL planner)
finds a plan; the plan is stored as the game's ``walkthrough``. Scenes of ALFRED's valid_unseen
split are refused everywhere (``VALID_UNSEEN_SCENES``), so generated games never leak the
out-of-distribution eval scenes.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import random
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

RESOURCES = Path(__file__).parent / "resources"
SCENES_FILE = RESOURCES / "scenes.json.gz"

# ALFRED's split definition: the four floorplans of valid_unseen (kitchen 10, living room 219,
# bedroom 308, bathroom 424). Generated games must never use them.
VALID_UNSEEN_SCENES = frozenset({10, 219, 308, 424})

TASK_TYPES = {1: "pick_and_place_simple", 2: "look_at_obj_in_light", 3: "pick_clean_then_place_in_recep",
              4: "pick_heat_then_place_in_recep", 5: "pick_cool_then_place_in_recep", 6: "pick_two_obj_and_place"}
# Receptacles ALFRED never uses as the final place (they move, or are the tool of the task).
_NOT_PARENTS = {"Bowl", "Box", "Cup", "Mug", "Plate", "Pan", "Pot", "Sink", "Bathtub"}
_TOOL = {"pick_clean_then_place_in_recep": "SinkBasin", "pick_heat_then_place_in_recep": "Microwave",
         "pick_cool_then_place_in_recep": "Fridge"}
_PROPERTY = {"pick_clean_then_place_in_recep": "cleanable", "pick_heat_then_place_in_recep": "heatable",
             "pick_cool_then_place_in_recep": "coolable"}
_FACT = re.compile(r"^\s*\((\w+) ([^\s()]+)(?: ([^\s()]+))?\)\s*$", re.M)


@dataclass(frozen=True)
class Problem:
    """One generated task: which scene state, which goal, and the task sentence's template seed."""
    scene_key: str          # "<scene_num>/<trial id>" of the source scene state
    task_type: str
    object_target: str
    parent_target: str = ""
    toggle_target: str = ""
    text_seed: int = 0      # picks the task sentence among the goal library's templates

    @property
    def name(self) -> str:
        scene = self.scene_key.split("/")[0]
        key = hashlib.blake2b(repr(asdict(self)).encode(), digest_size=4).hexdigest()
        return f"{self.task_type}-{self.object_target}-None-{self.parent_target or self.toggle_target}-{scene}/gen_{key}"


@contextlib.contextmanager
def seeded_global_random(seed: int) -> Iterator[None]:
    """ALFWorld's helpers draw from the ``random`` module; run them on a private seeded state
    and give the caller's state back, so results are reproducible and nothing global changes."""
    saved = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(saved)


def scene_num(scene_key: str) -> int:
    return int(scene_key.split("/")[0])


def strip_goal(problem_pddl: str) -> str:
    """The problem text before its ``(:goal``: objects and initial facts (the scene state)."""
    cut = problem_pddl.rfind("(:goal")
    if cut < 0:
        raise ValueError("not an ALFRED problem: no (:goal section")
    return problem_pddl[:cut]


def load_scenes(source: str | Path | None = None) -> dict[str, str]:
    """Scene states by key. ``source``: None for the embedded ones (from ALFRED's seen floorplans),
    or a folder of ALFRED trials (``*/*/initial_state.pddl`` + ``traj_data.json``)."""
    if source is None:
        with gzip.open(SCENES_FILE, "rt") as f:
            scenes = json.load(f)
    else:
        root = Path(source)
        scenes = {}
        for pddl in sorted(root.glob("**/initial_state.pddl")):
            traj = json.loads((pddl.parent / "traj_data.json").read_text())
            scenes[f"{traj['scene']['scene_num']}/{traj['task_id']}"] = strip_goal(pddl.read_text())
        if not scenes:
            raise FileNotFoundError(f"No ALFRED trials (*/initial_state.pddl + traj_data.json) under {root}.")
    unseen = sorted({k for k in scenes if scene_num(k) in VALID_UNSEEN_SCENES})
    if source is not None and unseen:
        print(f"[alfworld] skipping {len(unseen)} trials of valid_unseen scenes {sorted(VALID_UNSEEN_SCENES)}")
    return {k: v for k, v in scenes.items() if scene_num(k) not in VALID_UNSEEN_SCENES}


@dataclass
class SceneFacts:
    """What a scene offers for goals, read from its initial facts."""
    types: dict[str, str]                 # object id -> type
    props: dict[str, set[str]]            # property -> object ids
    recep_types: set[str]
    can_contain: set[tuple[str, str]]     # (receptacle type, object type)
    inside: set[tuple[str, str]]          # (object type, receptacle type) already true


def scene_facts(scene: str) -> SceneFacts:
    types, recep_of, props, can, inside_ids = {}, {}, {}, set(), []
    for pred, a, b in _FACT.findall(scene):
        if pred == "objectType":
            types[a] = b[:-4]
        elif pred == "receptacleType":
            recep_of[a] = b[:-4]
        elif pred == "canContain":
            can.add((a[:-4], b[:-4]))
        elif pred == "inReceptacle":
            inside_ids.append((a, b))
        elif not b:
            props.setdefault(pred, set()).add(a)
    inside = {(types.get(o, ""), recep_of.get(r, "")) for o, r in inside_ids}
    return SceneFacts(types, props, set(recep_of.values()), can, inside)


def candidate_goals(facts: SceneFacts) -> list[tuple[str, str, str, str]]:
    """Every (task_type, object, parent, toggle) the scene supports, in a fixed order."""
    pick = facts.props.get("pickupable", set())
    counts: dict[str, int] = {}
    for o in pick:
        counts[facts.types[o]] = counts.get(facts.types[o], 0) + 1
    obj_types = sorted(t for t in counts if "Sliced" not in t)
    parents = sorted(facts.recep_types - _NOT_PARENTS)
    out = []
    for task in TASK_TYPES.values():
        for obj in obj_types:
            if task == "look_at_obj_in_light":
                # ALFRED's look goal needs the lamp inside a receptacle: desk lamps only
                lamps = sorted({facts.types[o] for o in facts.props.get("toggleable", set())} & {"DeskLamp"})
                out += [(task, obj, "", lamp) for lamp in lamps]
                continue
            if task == "pick_two_obj_and_place" and counts[obj] < 2:
                continue
            if task in _PROPERTY:
                if _TOOL[task] not in facts.recep_types:
                    continue
                if not any(facts.types[o] == obj for o in facts.props.get(_PROPERTY[task], set())):
                    continue
            for parent in parents:
                if (parent, obj) not in facts.can_contain or parent == _TOOL.get(task):
                    continue
                if task in ("pick_and_place_simple", "pick_two_obj_and_place") and (obj, parent) in facts.inside:
                    continue   # already (partly) done at the start
                out.append((task, obj, parent, ""))
    return out


def sample_problems(scenes: dict[str, str], n: int, seed: int = 0, task_types: list[str] | None = None,
                    exclude: set[tuple] = frozenset()) -> list[Problem]:
    """``n`` distinct problems, balanced over task types, drawn with ``random.Random(seed)``.
    ``exclude``: (scene_key, task_type, object, parent, toggle) tuples to avoid (e.g. the source
    trial's own goal)."""
    rng = random.Random(seed)
    wanted = list(task_types or TASK_TYPES.values())
    by_task: dict[str, list[tuple[str, tuple]]] = {t: [] for t in wanted}
    for key in sorted(scenes):
        for goal in candidate_goals(scene_facts(scenes[key])):
            if goal[0] in by_task and (key, *goal) not in exclude:
                by_task[goal[0]].append((key, goal))
    for t in by_task:
        rng.shuffle(by_task[t])
    problems, i = [], 0
    while len(problems) < n and any(by_task.values()):
        t = wanted[i % len(wanted)]
        i += 1
        if by_task[t]:
            key, (task, obj, parent, toggle) = by_task[t].pop()
            problems.append(Problem(key, task, obj, parent, toggle, text_seed=rng.randrange(2**31)))
    return problems


def goal_pddl(p: Problem) -> str:
    import alfworld.gen.goal_library as glib
    return glib.gdict[p.task_type]["pddl"].format(obj=p.object_target, recep=p.parent_target,
                                                  toggle=p.toggle_target, mrecep="").replace("#", "-")


def traj_data(p: Problem) -> dict:
    """The fields of ALFRED's traj_data.json that ALFWorld reads (task, goal parameters, scene)."""
    num = scene_num(p.scene_key)
    return {"task_id": p.name.split("/")[1], "task_type": p.task_type,
            "pddl_params": {"object_target": p.object_target, "parent_target": p.parent_target,
                            "toggle_target": p.toggle_target, "mrecep_target": "", "object_sliced": False},
            "scene": {"scene_num": num, "floor_plan": f"FloorPlan{num}", "source_trial": p.scene_key.split("/")[1]},
            "turk_annotations": {"anns": []}, "generated_by": "agentgym"}


def logic_files() -> tuple[str, str]:
    """ALFWorld's PDDL domain and TextWorld grammar, from the installed wheel (pinned by hash in the docs)."""
    import alfworld
    root = Path(alfworld.__file__).parent / "data"
    return (root / "alfred.pddl").read_text(), (root / "alfred.twl2").read_text()


def game_data(p: Problem, scene: str) -> dict:
    """The game.tw-pddl content (``solvable``/``walkthrough`` still unset), as alfworld-generate writes it."""
    from alfworld.agents.utils.misc import add_task_to_grammar
    domain, grammar = logic_files()
    with seeded_global_random(p.text_seed):
        grammar = add_task_to_grammar(grammar, traj_data(p))
    problem = re.sub(r"\(problem [^)\s]+", f"(problem gen_{p.name.split('_')[-1]}", scene, count=1) + goal_pddl(p)
    return {"pddl_domain": domain, "grammar": grammar, "pddl_problem": problem, "solvable": None, "walkthrough": None}


def plan(game: dict) -> list[str] | None:
    """Fast Downward's plan for a game (textworld's PDDL env replans on reset), or None."""
    import textworld
    from textworld.envs import PddlEnv
    from alfworld.agents.environment.alfred_tw_env import AlfredDemangler
    env = AlfredDemangler(PddlEnv(textworld.EnvInfos(policy_commands=True)), shuffle=False)
    try:
        env.load(game)
        state = env.reset()
        commands = state["policy_commands"]
    except Exception:   # the planner or parser refused it: unsolvable
        return None
    return list(commands) if commands else None


def write_game(p: Problem, scene: str, folder: Path, walkthrough: list[str] | None = None) -> Path | None:
    """Write ``folder/<name>/{initial_state.pddl, traj_data.json, game.tw-pddl}``; plan it when no
    walkthrough is given. Returns the game file, or None when Fast Downward finds no plan."""
    game = game_data(p, scene)
    walkthrough = walkthrough if walkthrough is not None else plan(game)
    if not walkthrough:
        return None
    game["solvable"], game["walkthrough"] = True, list(walkthrough)
    out = folder / p.name
    out.mkdir(parents=True, exist_ok=True)
    (out / "initial_state.pddl").write_text(game["pddl_problem"])
    (out / "traj_data.json").write_text(json.dumps(traj_data(p), indent=1))
    tmp = out / "game.tw-pddl.tmp"
    tmp.write_text(json.dumps(game))
    tmp.replace(out / "game.tw-pddl")
    return out / "game.tw-pddl"
