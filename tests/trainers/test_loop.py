"""The shared loop end to end on the toy guessing env (local pool, agentgym-tiny), plus the logger."""

import dataclasses
import json

import pytest
import torch

from agentgym.logger import MetricLogger, format_line, plot_curve, read_metrics
from agentgym.trainers import get_algo, register_algo


def run(cfg):
    from agentgym.trainers.loop import Trainer

    t = Trainer(cfg)
    try:
        t.setup()
        before = {k: v.detach().clone() for k, v in t.model.state_dict().items()}
        t.train()
        return t, before
    finally:
        t.cleanup()


@pytest.mark.slow
def test_grpo_two_iterations(make_cfg):
    # one minibatch per iteration: the update's ratio must start at exactly 1 (rollout == learner log-probs)
    t, before = run(make_cfg("grpo", "train.minibatch_size=256", "checkpoint.keep=1"))
    d = t.run_dir
    for name in ("config.yaml", "metrics.jsonl", "learning_curve.png", "summary.json", "trajectories/iter_000001.jsonl",
                 "trajectories/eval_000002.jsonl"):
        assert (d / name).is_file(), name
    assert list((d / "tb").glob("events.out.tfevents.*"))
    assert sorted(p.name for p in (d / "checkpoints").iterdir()) == ["best", "iter_000002"]   # keep=1, + best
    rows = read_metrics(d / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 1, 2]
    r1 = rows[1]
    for key in ("rollout/success_rate", "rollout/mean_return", "rollout/env_steps_total", "rollout/dropped_episodes",
                "losses/loss", "losses/approx_kl", "losses/clipfrac", "charts/grad_norm", "eval/success_rate"):
        assert key in r1, key
    assert r1["losses/approx_kl"] < 1e-5 and r1["losses/clipfrac"] == 0.0
    assert r1["losses/ratio"] == pytest.approx(1.0, abs=1e-4)
    assert rows[2]["rollout/env_steps_total"] == r1["rollout/env_steps"] + rows[2]["rollout/env_steps"]
    if any(r["charts/flat_group_frac"] < 1 for r in rows[1:]):                      # some signal: weights moved
        assert any(not torch.equal(v, t.model.state_dict()[k]) for k, v in before.items())
    samples = [json.loads(line) for line in (d / "trajectories/iter_000001.jsonl").open()]
    assert 0 < len(samples) <= 4 and samples[0]["turns"][0]["prompt_ids"]


def test_ppo_with_warm_start(make_cfg):
    # choose mode: BC is the cross-entropy of the expert's choice; on 4 episodes it is too noisy to fall in 3 epochs
    t, _ = run(make_cfg("ppo", "train.iterations=1", "train.warm_start.episodes=8", "train.warm_start.epochs=10",
                        "eval.every=0"))
    rows = read_metrics(t.run_dir / "metrics.jsonl")
    ws = rows[0]
    assert ws["warm_start/expert_success_rate"] == 1.0
    assert ws["warm_start/nll_last_epoch"] < ws["warm_start/nll_first_epoch"]
    expert = [json.loads(line) for line in (t.run_dir / "expert_trajectories.jsonl").open()]
    assert len(expert) == 8 and all(e["success"] for e in expert)
    assert "losses/value_loss" in rows[-1] and "eval/success_rate" in rows[-1]      # eval.every=0: at the end


@pytest.mark.parametrize("bc_lr, moved", [(0.0, False), (None, True)])
def test_warm_start_has_its_own_learning_rate(make_cfg, bc_lr, moved):
    from agentgym.models import load_model
    from agentgym.trainers.loop import Trainer

    cfg = make_cfg("grpo", "train.warm_start.episodes=4", "train.warm_start.epochs=2", "eval.every=0")
    cfg.train.warm_start.lr = bc_lr
    t = Trainer(cfg)
    try:
        t.setup()                                     # the warm start runs here
        fresh, _ = load_model(str(cfg.model.path))
        same = all(torch.equal(v, fresh.state_dict()[k]) for k, v in t.model.state_dict().items())
        assert same != moved
        assert t.optimizer.param_groups[0]["lr"] == cfg.train.lr    # RL keeps train.lr
    finally:
        t.cleanup()


def test_bc_algorithm_and_custom_hooks(make_cfg):
    cfg = make_cfg("grpo", "train.iterations=1", "eval.every=0")
    cfg.algo = {"name": "bc"}
    t, _ = run(cfg)
    row = read_metrics(t.run_dir / "metrics.jsonl")[-1]
    assert row["rollout/success_rate"] == 1.0 and row["losses/nll"] > 0           # expert episodes, token NLL

    calls = []

    def all_win(trainer, state):                     # reward shaping: every episode returns 1
        calls.append(state.iteration)
        for traj in state.trajectories:
            traj.turns[-1].reward = 1.0

    grpo = get_algo("grpo")
    register_algo("grpo_all_win", dataclasses.replace(grpo, name="grpo_all_win", hooks={"rewards": all_win},
                                                      steps=("collect", "rewards", "advantages", "update", "log")))
    cfg = make_cfg("grpo", "train.iterations=1", "eval.every=0", "run_name=hooked")
    cfg.algo.name = "grpo_all_win"
    t, before = run(cfg)
    row = read_metrics(t.run_dir / "metrics.jsonl")[-1]
    assert calls == [1] and row["charts/flat_group_frac"] == 1.0 and row["charts/advantage_std"] == 0.0
    assert "eval/success_rate" not in row and not (t.run_dir / "checkpoints").exists()   # steps without eval, ckpt


def test_bad_config_is_refused_clearly(make_cfg):
    from agentgym.trainers.loop import Trainer

    with pytest.raises(ValueError, match="multiple of algo.group_size"):
        Trainer(make_cfg("grpo", "train.episodes_per_iter=5")).setup()
    cfg = make_cfg("grpo")
    cfg.policy.backend = "expert"
    with pytest.raises(ValueError, match="cannot be trained"):
        Trainer(cfg).setup()
    cfg = make_cfg("grpo")
    cfg.algo.bogus = 1
    with pytest.raises(ValueError, match="Unknown key.*bogus"):
        Trainer(cfg)
    cfg = make_cfg("grpo")
    cfg.algo = {"name": "grpo", "clip_eps": 0.2}
    t = Trainer(cfg)
    t.steps = ["collect", "nope"]
    with pytest.raises(ValueError, match="step 'nope'"):
        t.step_fn("nope")


def test_logger_and_plot(tmp_path, capsys):
    log = MetricLogger(tmp_path, tensorboard=True)
    log.log(1, {"rollout/env_steps_total": 10, "rollout/success_rate": 0.5, "eval/success_rate": 0.25,
                "losses/loss": torch.tensor(0.125), "note": "x"})
    log.log(2, {"rollout/env_steps_total": 20, "rollout/success_rate": 0.75, "losses/loss": float("nan")})
    log.close()
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert rows[0] == {"step": 1, "rollout/env_steps_total": 10.0, "rollout/success_rate": 0.5,
                       "eval/success_rate": 0.25, "losses/loss": 0.125, "note": "x"}
    assert rows[1]["losses/loss"] == "nan"
    assert "it 1 | steps 10 | succ 0.5 | loss 0.125 | eval_succ 0.25" in capsys.readouterr().out
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    png = plot_curve(tmp_path / "metrics.jsonl", tmp_path / "curve.png")
    assert png.stat().st_size > 1000
    MetricLogger(tmp_path, tensorboard=False).rewrite(rows[:1])
    assert len(read_metrics(tmp_path / "metrics.jsonl")) == 1
    assert format_line(3, {"rollout/dropped_episodes": 0}) == "it 3"


def test_eval_env_kwargs_evaluate_on_another_env_setting(make_cfg):
    # training guesses in [0, 4); eval.env_kwargs switches evaluation to [0, 2) (a held-out split, say)
    t, _ = run(make_cfg("grpo", "train.iterations=1", "eval.env_kwargs.n=2"))
    eval_turns = [turn for line in (t.run_dir / "trajectories/eval_000001.jsonl").open()
                  for turn in json.loads(line)["turns"]]
    train_turns = [turn for line in (t.run_dir / "trajectories/iter_000001.jsonl").open()
                   for turn in json.loads(line)["turns"]]
    assert {len(turn["info"]["admissible_actions"]) for turn in eval_turns} == {2}
    assert {len(turn["info"]["admissible_actions"]) for turn in train_turns} == {4}


def test_eval_pool_is_the_held_out_setting_for_scripts(make_cfg):
    # benchmarks evaluate through trainer.eval_pool(): with eval.env_kwargs it must be a second pool
    # on the eval setting, not the training pool (an ALFWorld comparison once scored training games)
    from agentgym.evaluate import evaluate
    from agentgym.trainers.loop import Trainer

    for extra, n in (([], 4), (["eval.env_kwargs.n=2"], 2)):
        cfg = make_cfg("grpo", "train.iterations=1", *extra)
        t = Trainer(cfg)
        try:
            t.setup()
            assert (t.eval_pool() is t.pool) == (not extra)
            _, trajs = evaluate(t.policy, cfg, episodes=2, pool=t.eval_pool())
            assert {len(turn.info["admissible_actions"]) for tr in trajs for turn in tr.turns} == {n}
        finally:
            t.cleanup()
