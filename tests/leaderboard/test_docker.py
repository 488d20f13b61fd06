"""The leaderboard in Docker: core@1 for random and the default model in sandboxed containers, the
sandbox has no network, and the host refuses what a container should not have written.

Needs a running Docker daemon and the image (`.ci/run` starts dockerd and builds both:
docker/make-base.sh, then `agentgym leaderboard image --base agentgym-base:bookworm --wheels`).
"""

import json
import subprocess

import pytest

from agentgym.leaderboard import container
from agentgym.leaderboard.errors import LeaderboardError
from agentgym.leaderboard.runner import read_records, resolve_submission, run_suite
from agentgym.leaderboard.site import build_site
from agentgym.leaderboard.suite import load_suite

@pytest.fixture(scope="module")
def image(skip_or_fail):
    if why := container.docker_problem():
        skip_or_fail(f"Docker is not usable here: {why}", "AGENTGYM_REQUIRE_DOCKER")
    name = container.default_image()
    if container.image_digest(name) is None:
        skip_or_fail(f"no image {name}; build it with `agentgym leaderboard image` (see .ci/run)",
                     "AGENTGYM_REQUIRE_DOCKER")
    return name


@pytest.mark.slow
def test_the_sandbox_has_no_network(image):
    probe = ("import socket\n"
             "names = sorted(n for _, n in socket.if_nameindex())\n"
             "try:\n"
             "    socket.create_connection(('1.1.1.1', 53), timeout=3); print('connected')\n"
             "except OSError as e:\n"
             "    print('refused', type(e).__name__)\n"
             "print(names)\n")
    cmd = ["docker", "run", *container.sandbox_flags(name="agentgym-lb-nettest", cpus=1, memory="1g", pids=64),
           "--entrypoint", "python", image, "-c", probe]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result, interfaces = out.stdout.splitlines()
    assert result.startswith("refused") and interfaces == "['lo']"     # loopback only


@pytest.mark.slow
def test_core_suite_for_random_and_the_default_model_in_containers(image, tmp_path):
    """The two CI submissions: each runs core@1 in its own container; the host checks what comes back,
    and the numbers equal a run of the same submission on the host."""
    suite = load_suite("core@1")
    digest = container.image_digest(image)
    out = tmp_path / "results"
    for spec, name in (("random", "random"), ("agentgym-tiny", "default-model")):
        submission = resolve_submission(spec, name=name)
        summary = container.run_in_container(suite, submission, out, image=image,
                                             cpus=2, memory="6g")
        records = read_records(out / name / "episodes.jsonl", suite, name)
        ran = [e for e in suite.entries if not e.missing()]
        assert len(records) == sum(len(e.seeds) for e in ran)
        assert all(r["image"] == digest and r["model_hash"] == submission.model_hash for r in records)
        meta = json.loads((out / name / "submission.json").read_text())
        assert meta["docker"] and meta["image"] == digest and meta["finished"]
        assert set(summary["envs"]) == {e.name for e in ran}
    # the same random submission on the host plays the same episodes
    host = run_suite(suite, resolve_submission("random"), tmp_path / "host", progress=False)
    docker_summary = json.loads((out / "random" / "summary.json").read_text())
    assert {k: v["success"] for k, v in host["envs"].items()} == {k: v["success"] for k, v in docker_summary["envs"].items()}
    board = build_site(out, tmp_path / "site")
    assert set(board["submissions"]) == {"random", "default-model"}


def test_a_build_leaves_only_tagged_images_behind(image):
    """Each build tags its build stage and removes what earlier builds left untagged (several GB
    each): stale builds once filled the disk of this project's CI machine."""
    assert container.image_digest(f"{image}-build") is not None
    listed = subprocess.run(["docker", "images", "--quiet", "--filter", "dangling=true",
                             "--filter", f"label={container.IMAGE_LABEL}"], capture_output=True, text=True, check=True)
    assert listed.stdout.split() == []


def test_a_failed_build_is_one_clear_error(image, tmp_path):
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "Dockerfile").write_text("ARG BASE\nFROM ${BASE} AS build\nRUN exit 7\n")
    with pytest.raises(LeaderboardError, match="docker build .*failed .*no space left on device"):
        container.build_image(base="agentgym-base:bookworm", tag="agentgym-test:broken", context=tmp_path)
    left = subprocess.run(["docker", "ps", "--all", "--no-trunc", "--format", "{{.Command}}"],
                          capture_output=True, text=True, check=True).stdout
    assert "exit 7" not in left                      # nor is the failed step's container kept


def test_the_host_refuses_a_container_result_for_another_model(tmp_path):
    suite = load_suite("core@1")
    submission = resolve_submission("random", name="random")
    run_suite(suite, submission, tmp_path, progress=False)
    path = tmp_path / "random" / "episodes.jsonl"
    lines = path.read_text().splitlines()
    forged = json.loads(lines[0])
    forged["model_hash"] = "sha256:" + "0" * 64
    path.write_text("\n".join([json.dumps(forged)] + lines[1:]) + "\n")
    folder = container.ResultsFolder(tmp_path, suite, submission, resume=True)
    with pytest.raises(LeaderboardError, match="another model or policy"):
        container.collect_results(folder, suite, submission, "sha256:image")


def test_an_endpoint_policy_is_not_sent_into_a_networkless_container(tmp_path):
    suite = load_suite("core@1")
    with pytest.raises(LeaderboardError, match="--no-docker"):
        container.run_in_container(suite, resolve_submission("openai:m@http://127.0.0.1:1/v1"), tmp_path)
