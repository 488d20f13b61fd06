"""EnvPool: local and Ray backends, results, expert info, faults (exception, crash, hang), Ray init."""

import os
import time

import pytest

import agentgym.testing  # noqa: F401  (registers the AgentgymTest-* toy envs)
from agentgym.core import CapabilityError
from agentgym.policies import make_policy
from agentgym.pool import StepResult, _ray_init_kwargs, init_ray, make_pool
from agentgym.rollout import collect, episode_specs

GUESS, FAULTY, ECHO = "AgentgymTest-Guess-v0", "AgentgymTest-Faulty-v0", "AgentgymTest-Echo-v0"
LEAKY = "AgentgymTest-Leaky-v0"


def as_dicts(trajectories):
    return [t.to_dict() for t in trajectories]


def wait_all(pool, n, timeout=60.0):
    """Collect ``n`` results (sorted by slot)."""
    out, deadline = [], time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        out += pool.wait(timeout=1.0)
    assert len(out) == n, f"expected {n} results, got {out}"
    return sorted(out, key=lambda r: r.slot)


def run_script(pool, seeds, actions):
    """Reset every slot, then step each with the same list of actions; return all results."""
    for slot, seed in enumerate(seeds):
        pool.reset(slot, seed)
    log = [wait_all(pool, len(seeds))]
    for action in actions:
        for slot in range(len(seeds)):
            pool.step(slot, action)
        log.append(wait_all(pool, len(seeds)))
    return log


# -- local backend ----------------------------------------------------------------------------

def test_local_pool_results_expert_and_system_prompt():
    with make_pool(GUESS, 3, backend="local", with_expert=True) as pool:
        assert pool.env_id == GUESS and pool.num_envs == 3
        assert "number guessing game" in pool.system_prompt()
        assert pool.wait() == []                          # nothing in flight
        pool.reset(0, 5)
        pool.reset(2, 5)
        (a, b) = pool.wait()
        assert (a.slot, a.kind, b.slot) == (0, "reset", 2) and a.error is None
        assert a.obs == b.obs and a.info["admissible_actions"][0] == "guess 0"
        assert a.info["expert_action"] == "guess 3"      # bisect [0, 7]
        pool.step(0, "guess 3")
        (r,) = pool.wait()
        assert r.kind == "step" and isinstance(r.reward, float)
        assert r.terminated or r.info["expert_action"] != "guess 3"   # the expert uses the feedback


def test_malformed_action_is_an_observation_not_an_error():
    with make_pool(GUESS, 1, backend="local") as pool:
        pool.reset(0, 0)
        pool.wait()
        for bad in ["", "guess", "guess 99", "dance wildly", "guess -1"]:
            pool.step(0, bad)
            (r,) = pool.wait()
            assert r.error is None and r.info["invalid_action"] is True
            assert "Invalid action" in r.obs and not r.terminated


def test_slot_misuse_and_bad_arguments_raise_clear_errors():
    with make_pool(GUESS, 2, backend="local") as pool:
        with pytest.raises(IndexError, match="out of range"):
            pool.reset(2, 0)
        pool.reset(0, 0)
        with pytest.raises(RuntimeError, match="in flight"):
            pool.step(0, "guess 1")
    with pytest.raises(ValueError, match="backend"):
        make_pool(GUESS, 2, backend="threads")
    with pytest.raises(ValueError, match="num_envs"):
        make_pool(GUESS, 0, backend="local")
    with pytest.raises(CapabilityError, match="expert_action"):
        make_pool(ECHO, 1, backend="local", with_expert=True)


def test_local_env_exception_becomes_error_result_and_env_is_rebuilt():
    with make_pool(FAULTY, 1, backend="local", env_kwargs={"fault": "raise", "at_step": 1}) as pool:
        pool.reset(0, 0)
        pool.wait()
        pool.step(0, "guess 1")
        (r,) = pool.wait()
        assert r.error is not None and "injected error" in r.error and pool.metrics["errors"] == 1
        pool.reset(0, 0)                                    # the rebuilt env works
        (r,) = pool.wait()
        assert r.error is None and r.kind == "reset"


def test_max_turns_truncates():
    with make_pool(GUESS, 1, backend="local", max_turns=2) as pool:
        log = run_script(pool, [0], ["bad", "bad"])
        assert [r.truncated for (r,) in log[1:]] == [False, True]


# -- Ray backend ------------------------------------------------------------------------------

def test_ray_pool_matches_local_pool(ray_up):
    seeds, actions = [1, 2, 3, 4, 5], ["guess 3", "guess 5", "oops", "guess 1"]
    with make_pool(GUESS, 5, backend="local", with_expert=True) as pool:
        expected = run_script(pool, seeds, actions)
    with make_pool(GUESS, 5, backend="ray", num_workers=2, with_expert=True) as pool:
        assert pool.num_workers == 2 and "number guessing" in pool.system_prompt()
        got = run_script(pool, seeds, actions)
        assert pool.metrics == {"restarts": 0, "timeouts": 0, "errors": 0, "recycles": 0}
    assert got == expected


def test_ray_pool_wait_is_asynchronous(ray_up):
    with make_pool(FAULTY, 2, backend="ray", num_workers=2,
                   env_kwargs={"fault": "sleep", "at_step": 1, "sleep_s": 1.5}) as pool:
        pool.reset(0, 0)
        pool.reset(1, 0)
        wait_all(pool, 2)
        t0 = time.monotonic()
        pool.step(0, "guess 1")                             # submitting does not block
        assert time.monotonic() - t0 < 0.5
        assert pool.wait(timeout=0.2) == []                 # not ready yet
        (r,) = pool.wait()
        assert r.slot == 0 and r.error is None and time.monotonic() - t0 >= 1.5


def test_ray_worker_crash_restarts_actor_and_fails_affected_slots(ray_up):
    # 4 slots on 2 workers: worker 0 holds slots 0 and 2. Slot 0's env kills its process.
    with make_pool(FAULTY, 4, backend="ray", num_workers=2, env_kwargs={"fault": "exit", "at_step": 1}) as pool:
        for slot in range(4):
            pool.reset(slot, slot)
        wait_all(pool, 4)
        pool.step(0, "guess 1")
        (r,) = wait_all(pool, 1)
        assert r.slot == 0 and r.error is not None and "died" in r.error
        assert pool.metrics["restarts"] == 1 and pool.metrics["timeouts"] == 0
        pool.step(2, "guess 1")                             # its env died with the actor
        (r,) = wait_all(pool, 1)
        assert r.slot == 2 and "lost" in r.error
        pool.reset(1, 1)                                    # worker 1 was not touched
        pool.reset(0, 0)                                    # the new actor serves slot 0
        assert all(r.error is None for r in wait_all(pool, 2))


def test_ray_step_timeout_kills_hung_worker(ray_up, tmp_path):
    kwargs = {"fault": "sleep", "at_step": 1, "sleep_s": 60.0, "marker": str(tmp_path / "slept")}
    with make_pool(FAULTY, 2, backend="ray", num_workers=2, step_timeout_s=1.0, env_kwargs=kwargs) as pool:
        pool.reset(0, 0)
        pool.reset(1, 0)
        wait_all(pool, 2)
        t0 = time.monotonic()
        pool.step(0, "guess 1")                             # one of the two hangs (the marker
        pool.step(1, "guess 1")                             # lets the fault fire once), one is fine
        results = wait_all(pool, 2)
        assert time.monotonic() - t0 < 15
        (hung,) = [r for r in results if r.error is not None]
        assert "step_timeout_s" in hung.error
        assert pool.metrics["timeouts"] == 1 and pool.metrics["restarts"] == 1
        pool.reset(hung.slot, 0)
        wait_all(pool, 1)
        pool.step(hung.slot, "guess 1")                     # marker exists: no hang now
        (r,) = wait_all(pool, 1)
        assert r.error is None


def test_leaking_actor_is_recycled_and_trajectories_are_unchanged(ray_up):
    """An env leaking 40 MiB an episode: each actor is replaced once its RSS passes the limit, between
    episodes, so the trajectories equal a clean run's and the RSS stays bounded."""
    specs = episode_specs(12, 1, seed=4)
    with make_pool(LEAKY, 2, backend="local") as pool:
        clean = as_dicts(collect(pool, make_policy("random"), specs)[0])
    with make_pool(LEAKY, 2, backend="ray", num_workers=2, env_kwargs={"leak_mb_per_episode": 40}) as probe:
        limit = max(probe.rss_mb) + 100           # about 3 episodes' leak above a fresh actor
    with make_pool(LEAKY, 2, backend="ray", num_workers=2, env_kwargs={"leak_mb_per_episode": 40},
                   max_worker_rss_mb=limit) as pool:
        trajs, metrics = collect(pool, make_policy("random"), specs)
        assert pool.metrics["recycles"] >= 2 and pool.metrics["restarts"] == 0
        assert max(pool.rss_mb) < limit + 50
    assert metrics["dropped_episodes"] == 0 and as_dicts(trajs) == clean


def test_actor_is_recycled_after_n_episodes_only_between_episodes(ray_up):
    """recycle_after=1 with 2 slots per actor: an actor is never replaced while its other slot is
    mid-episode, at the latest at the next collect (every slot idle); trajectories are unchanged."""
    first, second = episode_specs(6, 1, seed=1), episode_specs(6, 1, seed=2)
    with make_pool(GUESS, 4, backend="local") as pool:
        clean = [as_dicts(collect(pool, make_policy("random"), specs)[0]) for specs in (first, second)]
    with make_pool(GUESS, 4, backend="ray", num_workers=2, recycle_after=1) as pool:
        got = [as_dicts(collect(pool, make_policy("random"), first)[0])]
        before = pool.metrics["recycles"]
        got.append(as_dicts(collect(pool, make_policy("random"), second)[0]))
        assert pool.metrics["recycles"] >= before + 2         # both actors, as the second collect starts
        assert pool.metrics["errors"] == 0 and pool.metrics["restarts"] == 0   # no episode lost its env
    assert got == clean


def test_ray_pool_reports_workers_that_fail_to_start(ray_up):
    with pytest.raises(RuntimeError, match="failed to start"):
        make_pool(GUESS, 2, backend="ray", num_workers=1, env_kwargs={"n": 1})


def test_close_is_idempotent(ray_up):
    pool = make_pool(GUESS, 2, backend="ray", num_workers=1)
    pool.close()
    pool.close()


def test_init_ray_keeps_running_instance(ray_up):
    init_ray("ray://nowhere:1")            # already initialized: no reconnect attempt
    assert ray_up.is_initialized()


def test_ray_address_resolution(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    local = _ray_init_kwargs(None)
    assert local["address"] == "local" and local["num_cpus"] == os.cpu_count() and not local["include_dashboard"]
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    joined = _ray_init_kwargs(None)
    assert joined["address"] == "10.0.0.1:6379" and "num_cpus" not in joined   # a cluster owns its CPUs
    assert _ray_init_kwargs("auto")["address"] == "auto"                        # the argument wins


def test_step_result_defaults():
    r = StepResult(3, "step", error="boom")
    assert (r.obs, r.reward, r.terminated, r.info) == ("", 0.0, False, {})


JOIN_SCRIPT = """
import agentgym.testing, ray
from agentgym.pool import make_pool
with make_pool("AgentgymTest-Guess-v0", 2, num_workers=2) as pool:
    pool.reset(0, 1)
    (r,) = pool.wait()
    print("JOINED", r.error, ray.cluster_resources().get("CPU"))
"""


def _free_port() -> int:
    import socket

    for port in range(26379, 26479):   # above Ray's default worker port range (10002-19999)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    pytest.skip("no free port for a Ray head node")


@pytest.mark.slow
def test_pool_joins_cluster_from_ray_address(tmp_path):
    """A real `ray start --head` with 1 CPU; a driver with RAY_ADDRESS set must join it (CPU == 1)
    rather than start its own 2-CPU instance. (Token auth off: the test makes a throwaway cluster.)"""
    import subprocess
    import sys

    port = _free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    head = subprocess.Popen(["ray", "start", "--head", "--block", "--num-cpus=1", f"--port={port}",
                             "--include-dashboard=false", "--disable-usage-stats"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(3)
        out = subprocess.run([sys.executable, "-c", JOIN_SCRIPT], env={**env, "RAY_ADDRESS": f"127.0.0.1:{port}"},
                             capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert "JOINED None 1.0" in out.stdout, out.stdout + out.stderr[-2000:]
    finally:
        head.terminate()             # --block: stopping `ray start` stops the head's processes
        head.wait(timeout=30)
        current = "/tmp/ray/ray_current_cluster"   # left behind by the head; later ray.init()s would read it
        if os.path.exists(current) and open(current).read().strip().endswith(f":{port}"):
            os.remove(current)


@pytest.mark.slow
def test_ray_workers_run_at_the_configured_niceness():
    """rollout.worker_niceness reaches the workers Ray starts (Ray's own default is 15)."""
    import subprocess
    import sys

    code = ("import os, ray\nfrom agentgym.pool import init_ray\ninit_ray(worker_niceness=3)\n"
            "print(ray.get(ray.remote(lambda: os.nice(0)).remote()))\nray.shutdown()\n")
    env = {k: v for k, v in __import__("os").environ.items() if k != "RAY_worker_niceness"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "3"


@pytest.mark.slow
def test_an_actor_that_dies_while_starting_is_started_again(ray_up, tmp_path):
    """A worker killed during its construction or restart is retried with backoff; only
    START_ATTEMPTS failures in a row raise, with one paragraph naming the env and the last error."""
    from agentgym.pool import START_ATTEMPTS, RayEnvPool

    counter = tmp_path / "starts"
    pool = RayEnvPool("AgentgymTest-Faulty-v0", 2, num_workers=1, env_kwargs={"crash_on_start": str(counter),
                                                                              "start_crashes": 2})
    try:
        assert pool.metrics["start_retries"] == 2
        pool.reset(0, seed=1)
        [result] = pool.wait()
        assert result.error is None and result.obs
    finally:
        pool.close()
    counter.write_text("0")
    with pytest.raises(RuntimeError, match=f"died while starting {START_ATTEMPTS} times in a row.*check-env"):
        RayEnvPool("AgentgymTest-Faulty-v0", 2, num_workers=1,
                   env_kwargs={"crash_on_start": str(counter), "start_crashes": 100})
