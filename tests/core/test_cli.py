import json
import subprocess
import sys


def agentgym(*args, stdin=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "agentgym.cli", *args], input=stdin, capture_output=True,
                          text=True, timeout=timeout)


def test_envs_lists_ids_with_descriptions():
    out = agentgym("envs")
    assert out.returncode == 0
    line = next(l for l in out.stdout.splitlines() if l.startswith("MiniHack-KeyRoom-S5-v0"))
    assert "minihack" in line and "expert_action" in line and "turns=60" in line
    rows = json.loads(agentgym("envs", "--json").stdout)
    assert {"id", "family", "max_turns", "capabilities", "description"} <= set(rows[0])


def test_play_a_whole_episode_from_the_terminal():
    # Room-5x5: start top-left, stairs 4 east 4 south; "3" picks an action by its number
    out = agentgym("play", "minihack", "--seed", "0", stdin="flap\nsoutheast\nsoutheast\n5\nsoutheast\n")
    assert out.returncode == 0, out.stderr
    assert "Invalid action" in out.stdout
    assert "[5] southeast" in out.stdout
    assert "Episode over: success=True" in out.stdout


def test_play_quits_on_eof():
    out = agentgym("play", "minihack", stdin="")
    assert out.returncode == 0 and "Reach the staircase" in out.stdout


def test_eval_random_and_expert_write_json(tmp_path):
    results = {}
    for policy in ("random", "expert"):
        path = tmp_path / f"{policy}.json"
        out = agentgym("eval", "--env", "minihack", "--policy", policy, "--episodes", "8", "--out", str(path),
                       "rollout.pool=local", "rollout.num_envs=4")
        assert out.returncode == 0, out.stderr
        results[policy] = json.loads(path.read_text())
    assert results["expert"]["success_rate"] == 1.0 and results["expert"]["episodes"] == 8
    assert results["random"]["success_rate"] < 1.0


def test_check_env_passes_for_minihack():
    out = agentgym("check-env", "MiniHack-KeyRoom-S5-v0", "--fuzz", "200")
    assert out.returncode == 0, out.stdout
    assert "passes the text-env contract" in out.stdout
