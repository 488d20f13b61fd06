"""Evaluate one submission on a suite, one JSONL line per episode (on this host; container.py wraps it).

    submission = resolve_submission("smollm2-135m")          # or a checkpoint, a model folder, random, ...
    run_suite(load_suite("core@1"), submission, "results/")   # results/smollm2-135m/episodes.jsonl, summary.json

A results folder holds one submission: ``submission.json`` (who, with what model and code),
``episodes.jsonl`` (every finished episode, written as it ends, so an interrupted run resumes
without re-running one), ``trajectories.jsonl`` (the first episodes of each env, as text) and
``summary.json`` (derived from the episode lines only, by ``stats.summarize``). Everything a run
would refuse (an unknown suite, a missing model folder, a model transformers cannot load as a
causal LM, a folder from another suite version) is refused before anything is written.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from agentgym.leaderboard.errors import LeaderboardError
from agentgym.leaderboard.suite import Suite, SuiteEntry, canonical_hash

SCHEMA = 1
STATUSES = ("ok", "timeout", "error")
NAMED_POLICIES = ("random", "expert")
TRAJECTORIES_PER_ENV = 2              # episodes per env kept as text for the board's submission page
# A record's fields and their types (the container is untrusted: the host checks every line).
RECORD_FIELDS: dict[str, type | tuple[type, ...]] = {
    "schema": int, "suite": str, "suite_hash": str, "submission": str, "env": str, "env_id": str, "seed": int,
    "policy": str, "model_hash": (str, type(None)), "config_hash": str, "agentgym_version": str, "git_sha": str,
    "image": (str, type(None)), "return": (int, float), "success": bool, "score": (int, float, type(None)),
    "score_name": (str, type(None)), "turns": int, "invalid_actions": int, "tokens": int, "wall_s": (int, float),
    "status": str, "error": (str, type(None)), "group": (str, type(None)),
}


# ----------------------------------------------------------------------------- submissions

@dataclass(frozen=True)
class Submission:
    name: str                      # the board's row and the results sub-folder
    policy: str                    # hf | openai | random | expert
    model: str | None = None       # hf: the model folder; openai: the served model's name
    base_url: str | None = None    # openai: the endpoint
    model_hash: str | None = None  # sha256 over the model folder's files

    @property
    def spec(self) -> str:
        """What `--policy` takes to rebuild this submission (the model folder for hf)."""
        if self.policy == "openai":
            return f"openai:{self.model}@{self.base_url}"
        return self.model if self.policy == "hf" else self.policy


def hash_folder(folder: str | os.PathLike) -> str:
    """sha256 over every file's relative path and bytes, in sorted order: the model's identity."""
    digest = hashlib.sha256()
    root = Path(folder)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return "sha256:" + digest.hexdigest()


def check_model_folder(folder: str | os.PathLike) -> None:
    """Refuse, in one sentence, a folder that transformers cannot load as a causal LM."""
    folder = Path(folder)
    config = folder / "config.json"
    if not folder.is_dir():
        raise LeaderboardError(f"Model folder {str(folder)!r} does not exist; pass a model folder, a checkpoint, "
                               f"a run folder, or one of smollm2-135m, agentgym-tiny, random, expert.")
    if (folder / "adapter_config.json").exists():
        raise LeaderboardError(f"{folder} is a LoRA adapter; merge it into its base model first "
                               f"(peft's merge_and_unload, then save_pretrained) so the submission is one folder.")
    if not config.exists():
        raise LeaderboardError(f"{folder} has no config.json, so it is not a Hugging Face model folder; pass the "
                               f"folder a checkpoint's model was saved to (<run>/checkpoints/<step>/model).")
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    model_type = json.loads(config.read_text()).get("model_type")
    if model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise LeaderboardError(f"{folder} holds a {model_type!r} model, not a causal language model transformers "
                               f"can load (AutoModelForCausalLM); the leaderboard evaluates causal LMs only.")


def resolve_submission(spec: str, name: str | None = None) -> Submission:
    """``random`` | ``expert`` | ``openai:MODEL@BASE_URL`` | a named model (agentgym-tiny, smollm2-135m)
    | a run folder (its latest checkpoint) | a checkpoint folder | a model folder."""
    from agentgym.models import SMOLLM2_NAME, TINY_NAME, model_folder, resolve_model_path

    if spec in NAMED_POLICIES:
        return Submission(name or spec, spec)
    if spec.startswith("openai:"):
        model, _, base_url = spec.removeprefix("openai:").partition("@")
        if not model or not base_url:
            raise LeaderboardError(f"Bad openai policy {spec!r}: write openai:MODEL@BASE_URL, "
                                   f"e.g. openai:gpt-4o-mini@https://api.openai.com/v1.")
        return Submission(name or model.replace("/", "_"), "openai", model=model, base_url=base_url)
    if spec in (TINY_NAME, SMOLLM2_NAME):
        folder = resolve_model_path(spec)
    else:
        try:
            folder = model_folder(spec)
        except FileNotFoundError as e:
            raise LeaderboardError(str(e)) from None
    check_model_folder(folder)
    default_name = spec if spec in (TINY_NAME, SMOLLM2_NAME) else Path(spec).resolve().name
    return Submission(name or default_name, "hf", model=str(Path(folder).resolve()), model_hash=hash_folder(folder))


def build_policy(submission: Submission, mode: str, seed: int = 0):
    from agentgym.policies import make_policy

    if submission.policy == "hf":
        from agentgym.models import load_model, resolve_device

        model, tokenizer = load_model(submission.model)
        return make_policy("hf", model=model, tokenizer=tokenizer, mode=mode, seed=seed, device=resolve_device("auto"))
    if submission.policy == "openai":
        policy = make_policy("openai", mode=mode, seed=seed, model=submission.model, base_url=submission.base_url)
        policy.check()
        return policy
    return make_policy(submission.policy, mode=mode, seed=seed)


# ----------------------------------------------------------------------------- records

@functools.cache
def provenance() -> dict[str, str]:
    """agentgym's version and git sha (the image's build arg inside a container); asked once per process."""
    import agentgym

    sha = os.environ.get("AGENTGYM_GIT_SHA")
    if not sha:
        try:
            sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                                 text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            sha = ""
    return {"agentgym_version": agentgym.__version__, "git_sha": sha or "unknown"}


def entry_settings(suite: Suite, entry: SuiteEntry) -> dict[str, Any]:
    """Everything that shapes an entry's episodes, as the runner applies it (its hash is config_hash)."""
    return {"env_id": entry.env_id, "kwargs": entry.kwargs, "max_turns": entry.max_turns,
            "history_turns": entry.history_turns, "mode": suite.mode, "sampling": suite.sampling,
            "episode_timeout_s": suite.episode_timeout_s}


def episode_record(traj, suite: Suite, entry: SuiteEntry, submission: Submission, base: dict[str, Any]) -> dict:
    last = traj.turns[-1].info if traj.turns else {}
    status = traj.info.get("status", "ok")
    score = None
    if entry.score:                    # an episode that ends without one (WebShop: no purchase) or broke scores 0
        score = last.get(entry.score, 0.0) if status == "ok" else 0.0
    group = last.get(entry.group) if entry.group else None
    return {**base, "env": entry.name, "env_id": entry.env_id, "seed": int(traj.seed),
            "return": float(traj.episode_return), "success": bool(traj.success),
            "score": None if score is None else float(score), "score_name": entry.score_name,
            "turns": len(traj.turns), "invalid_actions": sum(bool(t.info.get("invalid_action")) for t in traj.turns),
            "tokens": sum(len(t.prompt_ids) + len(t.response_ids) for t in traj.turns),
            "wall_s": float(traj.info.get("wall_s", 0.0)), "status": status,
            "error": traj.info.get("error"), "group": None if group is None else str(group)}


def parse_json(text: str, where: str) -> Any:
    """Strict JSON: NaN and Infinity (which json.loads accepts) are refused."""
    def no_constant(name):
        raise ValueError(name)
    try:
        return json.loads(text, parse_constant=no_constant)
    except ValueError:
        raise LeaderboardError(f"{where} is not valid JSON (NaN and Infinity are not allowed).") from None


def check_fields(record: Any) -> dict:
    """An episode record's schema, fields and their types, and status (what the host and the board
    both require), or a LeaderboardError saying what is wrong."""
    if not isinstance(record, dict):
        raise LeaderboardError("not a JSON object")
    if record.get("schema") != SCHEMA:
        raise LeaderboardError(f"not a schema {SCHEMA} episode record")
    for key, types in RECORD_FIELDS.items():
        if key not in record:
            raise LeaderboardError(f"missing field {key!r}")
        value = record[key]
        if not isinstance(value, types) or (types in (int, (int, float)) and isinstance(value, bool)):
            raise LeaderboardError(f"a bad {key!r} (the wrong type: {type(value).__name__})")
    if record["status"] not in STATUSES:
        raise LeaderboardError(f"status {record['status'][:60]!r} is not one of {', '.join(STATUSES)}")
    return record


def validate_record(line: str, suite: Suite, submission: str | None = None) -> dict:
    """One episode line as the host accepts it (its fields, and that it is one of this suite's
    episodes), or a LeaderboardError saying what is wrong with it."""
    record = check_fields(parse_json(line, "the line"))
    if record["suite_hash"] != suite.hash or record["suite"] != suite.label:
        raise LeaderboardError(f"from another suite ({record['suite']} {record['suite_hash'][:19]}), "
                               f"not {suite.label} {suite.hash[:19]}")
    if submission is not None and record["submission"] != submission:
        raise LeaderboardError(f"from submission {record['submission']!r}, not {submission!r}")
    try:
        entry = suite.entry(record["env"])
    except KeyError:
        raise LeaderboardError(f"env {record['env']!r} is not in {suite.label}") from None
    if record["seed"] not in entry.seeds or record["env_id"] != entry.env_id:
        raise LeaderboardError(f"seed {record['seed']} of {record['env_id']} is not one of {entry.name}'s episodes")
    if record["status"] != "ok":
        record["success"] = False            # an episode that broke counts as a failure
    return record


def read_records(path: str | os.PathLike, suite: Suite, submission: str | None = None) -> list[dict]:
    """Every line of an episodes file, validated; duplicates of an (env, seed) keep the first."""
    records, seen = [], set()
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = validate_record(line, suite, submission)
        except LeaderboardError as e:
            raise LeaderboardError(f"{path} line {number}: {e}.") from None
        if (record["env"], record["seed"]) not in seen:
            seen.add((record["env"], record["seed"]))
            records.append(record)
    return records


# ----------------------------------------------------------------------------- the results folder

class ResultsFolder:
    """``<out>/<submission>/``: checked against the suite and submission before anything is written."""

    def __init__(self, out: str | os.PathLike, suite: Suite, submission: Submission, *, resume: bool):
        self.dir = Path(out) / submission.name
        self.suite, self.submission = suite, submission
        self.episodes_path = self.dir / "episodes.jsonl"
        self.records: list[dict] = []
        meta_path = self.dir / "submission.json"
        if self.episodes_path.exists() or meta_path.exists():
            if not resume:
                raise LeaderboardError(f"{self.dir} already holds results; pass --resume to finish that run, "
                                       f"or choose another --out or --name.")
            meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
            if meta.get("suite_hash", suite.hash) != suite.hash:
                raise LeaderboardError(f"{self.dir} holds results of {meta.get('suite')} (hash "
                                       f"{meta['suite_hash'][:19]}), not of {suite.label} ({suite.hash[:19]}); "
                                       f"use another --out.")
            if meta.get("model_hash") != submission.model_hash or meta.get("policy", submission.policy) != submission.policy:
                raise LeaderboardError(f"{self.dir} holds results of another policy or model "
                                       f"({meta.get('policy')}, {meta.get('model_hash')}); use another --name.")
            if self.episodes_path.exists():
                self.records = read_records(self.episodes_path, suite, submission.name)

    def done(self, entry: SuiteEntry) -> set[int]:
        return {r["seed"] for r in self.records if r["env"] == entry.name}

    def write_manifest(self, **fields: Any) -> dict:
        meta = {"schema": SCHEMA, "submission": self.submission.name, "suite": self.suite.label,
                "suite_hash": self.suite.hash, "policy": self.submission.policy, "model": self.submission.model,
                "base_url": self.submission.base_url, "model_hash": self.submission.model_hash, **provenance(),
                "image": None, "docker": False, "started": now(), "finished": None}
        path = self.dir / "submission.json"
        if path.exists():
            meta.update({k: v for k, v in json.loads(path.read_text()).items() if k in ("started",)})
        meta.update(fields)
        self.dir.mkdir(parents=True, exist_ok=True)
        write_json(path, meta)
        return meta

    def append(self, record: dict, trajectory_text: dict | None = None) -> None:
        with self.episodes_path.open("a") as f:     # one whole line per episode, flushed as it ends
            f.write(json.dumps(record) + "\n")
        self.records.append(record)
        if trajectory_text is not None:
            with (self.dir / "trajectories.jsonl").open("a") as f:
                f.write(json.dumps(trajectory_text) + "\n")

    def write_summary(self, skipped: dict[str, str]) -> dict:
        from agentgym.leaderboard.stats import summarize

        meta = json.loads((self.dir / "submission.json").read_text())
        summary = {"suite": self.suite.label, "suite_hash": self.suite.hash, "envs": summarize(self.records),
                   "skipped": skipped, "manifest": meta}
        write_json(self.dir / "summary.json", summary)
        return summary


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


# ----------------------------------------------------------------------------- running

def entry_config(suite: Suite, entry: SuiteEntry, *, num_envs: int, pool: str):
    """A run config holding exactly the suite's settings for this entry (no family defaults)."""
    from agentgym.config import load_config

    cfg = load_config()
    cfg.env.id, cfg.env.kwargs, cfg.env.max_turns = entry.env_id, dict(entry.kwargs), entry.max_turns
    cfg.eval.env_kwargs = {}
    cfg.policy.mode, cfg.policy.history_turns = suite.mode, entry.history_turns
    cfg.rollout.pool, cfg.rollout.num_envs = pool, num_envs
    cfg.rollout.num_workers = min(int(cfg.rollout.num_workers), num_envs)
    return cfg


def run_suite(suite: Suite, submission: Submission, out: str | os.PathLike, *, resume: bool = False,
              num_envs: int = 4, pool: str = "local", progress: bool = True, policy=None,
              manifest_fields: dict | None = None) -> dict:
    """Evaluate ``submission`` on every entry of ``suite`` that can run here; returns the summary."""
    from agentgym.pool import pool_from_config
    from agentgym.policies.base import SamplingParams
    from agentgym.progress import Progress
    from agentgym.rollout import EpisodeSpec, collect

    folder = ResultsFolder(out, suite, submission, resume=resume)
    folder.write_manifest(**(manifest_fields or {}))
    shown = Progress(enabled=progress)
    policy = policy or build_policy(submission, suite.mode)
    s = suite.sampling
    sampling = SamplingParams(temperature=float(s["temperature"]), top_p=float(s["top_p"]),
                              max_new_tokens=int(s["max_new_tokens"]), greedy=bool(s["greedy"]))
    skipped = suite.skipped()
    for entry in suite.entries:
        if entry.name in skipped:
            shown.stage(skipped[entry.name])
            continue
        done = folder.done(entry)
        todo = [seed for seed in entry.seeds if seed not in done]
        if not todo:
            continue
        base = {"schema": SCHEMA, "suite": suite.label, "suite_hash": suite.hash, "submission": submission.name,
                "policy": submission.policy, "model_hash": submission.model_hash,
                "config_hash": canonical_hash(entry_settings(suite, entry)), **provenance(),
                "image": (manifest_fields or {}).get("image")}
        kept = sum(1 for r in folder.records if r["env"] == entry.name)
        cfg = entry_config(suite, entry, num_envs=min(num_envs, len(todo)), pool=pool)
        shown.stage(f"{suite.label} · {entry.name} ({entry.env_id}): {len(todo)} episodes"
                    + (f" ({len(done)} already done)" if done else ""))
        env_pool = pool_from_config(cfg, with_expert=policy.name == "expert", num_envs=cfg.rollout.num_envs,
                                    for_eval=True)
        specs = [EpisodeSpec(seed=seed, group=i, sample_seed=seed) for i, seed in enumerate(todo)]

        def on_episode(n: int, total: int, traj, bar_tick: Callable | None = None) -> None:
            nonlocal kept
            record = episode_record(traj, suite, entry, submission, base)
            text = None
            if kept < TRAJECTORIES_PER_ENV:
                text = {"env": entry.name, "seed": record["seed"], "return": record["return"],
                        "success": record["success"], "instruction": traj.instruction,
                        "turns": [{"observation": t.observation, "action": t.action} for t in traj.turns]}
            kept += 1
            folder.append(record, text)
            if bar_tick:
                bar_tick(n, total, traj)

        try:
            with shown.bar(len(specs), entry.name, unit="ep") as bar:
                collect(env_pool, policy, specs, sampling, history_turns=entry.history_turns, on_failure="record",
                        episode_timeout_s=suite.episode_timeout_s, timing=True,
                        progress=lambda n, total, traj: on_episode(n, total, traj, bar.on_episode))
        finally:
            env_pool.close()
    folder.write_manifest(finished=now(), **(manifest_fields or {}))
    return folder.write_summary(skipped)


VERIFIED_FIELDS = ("return", "success", "score", "turns", "invalid_actions", "status")


def verify(submitted: str | os.PathLike, rerun: str | os.PathLike) -> dict:
    """Compare a maintainer's re-run with a submission (runs are seeded: the same model on the same
    suite and image plays the same episodes). Both must hold the same suite and model hash; every
    episode of the submission must be in the re-run with equal VERIFIED_FIELDS. When they all are,
    the submission's manifest gets ``verified`` (the re-run's provenance); returns the comparison."""
    from agentgym.leaderboard.suite import load_suite

    metas = [json.loads((Path(d) / "submission.json").read_text()) for d in (submitted, rerun)]
    for key in ("suite_hash", "model_hash", "policy"):
        if metas[0].get(key) != metas[1].get(key):
            raise LeaderboardError(f"The re-run has another {key} ({metas[1].get(key)}) than the submission "
                                   f"({metas[0].get(key)}); re-run the same model on the same suite.")
    suite = load_suite(metas[0]["suite"])
    if suite.hash != metas[0]["suite_hash"]:
        raise LeaderboardError(f"This machine's {suite.label} has another hash than the submission's; "
                               f"verify with the agentgym version that made it ({metas[0].get('git_sha')}).")
    mine, theirs = (read_records(Path(d) / "episodes.jsonl", suite) for d in (submitted, rerun))
    redone = {(r["env"], r["seed"]): r for r in theirs}
    differ = [f"{r['env']} seed {r['seed']}" for r in mine
              if (r["env"], r["seed"]) not in redone
              or any(r[k] != redone[(r["env"], r["seed"])][k] for k in VERIFIED_FIELDS)]
    result = {"episodes": len(mine), "matched": len(mine) - len(differ), "differ": differ[:20]}
    if not differ and mine:
        meta = metas[0]
        meta["verified"] = {"by_git_sha": metas[1].get("git_sha"), "image": metas[1].get("image"),
                            "finished": metas[1].get("finished"), "episodes": len(mine)}
        write_json(Path(submitted) / "submission.json", meta)
    return result


def summary_line(summary: dict) -> str:
    """One line per env: success and the family score, with their 95% intervals."""
    lines = []
    for env, s in summary.get("envs", {}).items():
        succ = s["success"]
        text = f"{env}: success {succ['rate']:.3f} [{succ['lo']:.3f}, {succ['hi']:.3f}] over {s['n']} episodes"
        score = s.get("score") or {}
        if score.get("n"):
            se = f" ± {score['se']:.3f} (se)" if score.get("se") is not None else ""
            text += f"; {s.get('score_name') or 'score'} {score['mean']:.3f}{se}"
        lines.append(text)
    return "\n".join(lines)

