"""Run a submission inside a Docker container, and trust only what the host checks afterwards.

The container gets no network (``--network none``), the model folder and the suite read-only,
its own results folder as the only writable mount besides a /tmp in memory, CPU / memory / pids
limits, no capabilities, and a wall-clock limit (killed past it). Inside, it runs the same
``agentgym leaderboard run`` on the host's copy of the suite. When it is done, the host reads the
episode lines back through ``runner.read_records`` (schema, types, suite hash, seeds, the model's
hash), stamps the image digest on them, and writes the manifest and the summary itself.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from agentgym.leaderboard.errors import LeaderboardError
from agentgym.leaderboard.runner import ResultsFolder, Submission, now, read_records
from agentgym.leaderboard.suite import Suite

MAX_RESULT_BYTES = 200 << 20        # an episodes file larger than this is refused unread
DATA_FOLDERS = {"ALFWORLD_DATA": "/data/alfworld"}   # env variables naming data folders, and their mount point
REPO = Path(__file__).resolve().parents[2]
IMAGE_LABEL = "org.agentgym.image=sandbox"   # docker/Dockerfile puts it on every image of a build


def default_image() -> str:
    import agentgym

    return f"agentgym:{agentgym.__version__}"


def docker_problem() -> str | None:
    """Why Docker cannot run containers here (None when it can)."""
    if shutil.which("docker") is None:
        return "the docker command is not installed"
    probe = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"the Docker daemon does not answer ({probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else 'no output'}); start dockerd"
    return None


def image_digest(image: str) -> str | None:
    probe = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", image], capture_output=True, text=True)
    return probe.stdout.strip() if probe.returncode == 0 else None


def build_image(*, base: str = "python:3.11-slim", tag: str | None = None, wheels: bool = False,
                context: Path = REPO) -> str:
    """``docker build`` docker/Dockerfile; ``wheels``: first fill docker/wheels with ``pip wheel`` of
    agentgym's dependencies (this Python must match the base image's: cp311), so the build needs no
    network. Returns the image id.

    The build stage is tagged too (``<tag>-build``), so the layers that hold the dependencies stay
    cached for the next build instead of lying around untagged; what earlier builds left untagged is
    removed afterwards (only images with the Dockerfile's label, a few GB a build otherwise)."""
    tag = tag or default_image()
    wheel_dir = context / "docker" / "wheels"
    wheel_dir.mkdir(parents=True, exist_ok=True)
    if wheels:
        _run([sys.executable, "-m", "pip", "wheel", "-q", "--wheel-dir", str(wheel_dir),
              "torch==2.13.0", "wheel", "setuptools>=68,<81", str(context)], "pip wheel (the wheelhouse)")
        for own in wheel_dir.glob("agentgym-*.whl"):     # the image installs the sources, not a stale wheel
            own.unlink()
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=context, capture_output=True, text=True).stdout.strip()
    build = ["docker", "build", "--force-rm", "-f", str(context / "docker" / "Dockerfile"), "--build-arg", f"BASE={base}",
             "--build-arg", f"GIT_SHA={sha or 'unknown'}"]
    _run([*build, "--target", "build", "-t", f"{tag}-build", str(context)], "docker build (its build stage)")
    _run([*build, "-t", tag, str(context)], "docker build")
    subprocess.run(["docker", "image", "prune", "--force", "--filter", f"label={IMAGE_LABEL}"],   # a failed clean-up
                   capture_output=True, check=False)                                          # keeps the new image
    return image_digest(tag) or tag


def _run(cmd: list[str], what: str) -> None:
    """Run a build step whose output the user sees; a failure becomes one clear error, not a traceback."""
    try:
        subprocess.run(cmd, check=True)
    except subprocess.CalledProcessError as e:
        raise LeaderboardError(
            f"{what} failed (exit {e.returncode}); its output is above. If it says 'no space left on device', "
            f"see what Docker holds with `docker system df` and free it with `docker image prune`.") from None


def sandbox_flags(*, name: str, cpus: float, memory: str, pids: int) -> list[str]:
    """``docker run`` flags of every leaderboard container: no network, a read-only root with an
    in-memory /tmp, no capabilities, CPU / memory / pids limits, the caller's uid."""
    return ["--rm", "--name", name, "--network", "none", "--read-only", "--tmpfs", "/tmp:rw,exec,size=4g",
            "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--cpus", str(cpus), "--memory", memory,
            "--pids-limit", str(pids), "--user", f"{os.getuid()}:{os.getgid()}"]


def container_command(suite_file: Path, submission: Submission, results: Path, *, image: str, name: str,
                      resume: bool, num_envs: int, cpus: float, memory: str, pids: int) -> list[str]:
    """The ``docker run`` line: the sandbox, the suite and model read-only, one writable results mount."""
    cmd = ["docker", "run", *sandbox_flags(name=name, cpus=cpus, memory=memory, pids=pids),
           "-v", f"{suite_file}:/suite.yaml:ro", "-v", f"{results}:/results/{submission.name}:rw"]
    policy = submission.spec
    if submission.policy == "hf":
        cmd += ["-v", f"{submission.model}:/model:ro"]
        policy = "/model"
    for var, inside in DATA_FOLDERS.items():      # data the suite may need, read-only, where it exists
        if (data := os.environ.get(var)) and Path(data).is_dir() and any(Path(data).iterdir()):
            cmd += ["-v", f"{Path(data).resolve()}:{inside}:ro", "-e", f"{var}={inside}"]
    cmd += [image, "leaderboard", "run", "--suite", "/suite.yaml", "--policy", policy, "--name", submission.name,
            "--out", "/results", "--no-docker", "--num-envs", str(num_envs), "--no-progress"]
    return cmd + (["--resume"] if resume else [])


def run_in_container(suite: Suite, submission: Submission, out: str | os.PathLike, *,
                     image: str | None = None, resume: bool = False, num_envs: int = 4, cpus: float = 2,
                     memory: str = "8g", pids: int = 1024, timeout_s: float | None = None,
                     progress: bool = True) -> dict:
    """Evaluate ``submission`` on ``suite`` in a container; returns the host-made summary."""
    if submission.policy == "openai":
        raise LeaderboardError("An openai policy needs the network to reach its endpoint, and containers run with "
                               "none; run it on the host with --no-docker.")
    if why := docker_problem():
        raise LeaderboardError(f"Cannot run in Docker: {why}. Pass --no-docker to evaluate on the host.")
    image = image or default_image()
    digest = image_digest(image)
    if digest is None:
        raise LeaderboardError(f"No Docker image {image!r}; build it with `agentgym leaderboard image` "
                               f"(docs/leaderboard.md), or pass --no-docker.")
    folder = ResultsFolder(out, suite, submission, resume=resume)   # refuses a foreign folder before writing
    folder.write_manifest(docker=True, image=digest)
    name = f"agentgym-lb-{uuid.uuid4().hex[:12]}"
    episodes = sum(len(e.seeds) for e in suite.entries if not e.missing())
    timeout_s = timeout_s or 600 + episodes * suite.episode_timeout_s / max(num_envs, 1)
    with tempfile.TemporaryDirectory() as tmp:        # the manifest as hashed (JSON is YAML), whatever its source
        suite_file = Path(tmp) / "suite.yaml"
        suite_file.write_text(json.dumps(suite.manifest))
        cmd = container_command(suite_file, submission, folder.dir.resolve(), image=image, name=name,
                                resume=True, num_envs=num_envs, cpus=cpus, memory=memory, pids=pids)
        returncode, log = watch(cmd, name, folder.episodes_path, total=episodes, initial=len(folder.records),
                                timeout_s=timeout_s, progress=progress)
    records = collect_results(folder, suite, submission, digest)
    if returncode != 0:
        tail = "timed out" if returncode is None else log.strip()[-1500:]
        raise LeaderboardError(f"The container stopped before the suite ended ({len(records)} episodes kept in "
                               f"{folder.dir}; --resume continues): {tail}")
    folder.write_manifest(docker=True, image=digest, finished=now())
    return folder.write_summary(suite.skipped())


def watch(cmd: list[str], name: str, episodes_path: Path, *, total: int, initial: int, timeout_s: float,
          progress: bool) -> tuple[int | None, str]:
    """Run the container, showing its progress from the host (episode lines written so far, with rate
    and ETA); kill it past ``timeout_s``. Returns (exit code or None on timeout, its output)."""
    from agentgym.progress import Progress

    def lines() -> int:
        try:
            with episodes_path.open("rb") as f:
                return sum(1 for _ in f)
        except OSError:
            return 0

    with tempfile.TemporaryFile("w+") as log, Progress(enabled=progress).bar(total, "container", "ep",
                                                                             initial=initial) as bar:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + timeout_s
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(1.0)
                bar.update(max(0, lines() - bar.n))
        finally:                          # past the limit, or Ctrl-C here: the container goes too
            returncode = proc.poll()
            if returncode is None:
                subprocess.run(["docker", "kill", name], capture_output=True)
                proc.wait()
        bar.update(max(0, lines() - bar.n))
        log.seek(0)
        return returncode, log.read()


def collect_results(folder: ResultsFolder, suite: Suite, submission: Submission, digest: str) -> list[dict]:
    """The container's episode lines, checked, with the host's image digest; written back atomically."""
    path = folder.episodes_path
    if not path.exists():
        folder.records = []
        return []
    if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_RESULT_BYTES:
        raise LeaderboardError(f"{path} is not a plain file under {MAX_RESULT_BYTES >> 20} MB; the container's "
                               f"output was refused.")
    records = read_records(path, suite, submission.name)
    for r in records:
        if r["model_hash"] != submission.model_hash or r["policy"] != submission.policy:
            raise LeaderboardError(f"{path}: an episode of {r['env']} names another model or policy "
                                   f"({r['policy']}, {r['model_hash']}) than the one submitted; refused.")
        r["image"] = digest
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
    tmp.replace(path)
    folder.records = records
    return records
