"""model.device: where the policy, the learner and SPA's estimator run. The CUDA tests run only
where torch sees a GPU (never in CI); the rest checks the device plumbing on the CPU."""

import dataclasses

import pytest
import torch

from agentgym.config import ConfigError
from agentgym.models import resolve_device
from agentgym.trainers.batch import TurnBatch

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_resolve_device_auto_and_clear_errors():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="not a device torch knows"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="model.device=cpu"):
            resolve_device("cuda")
    else:
        with pytest.raises(ConfigError, match="CUDA GPU"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")


def test_turn_batch_to_moves_every_tensor_and_keeps_turns():
    turns = [object(), object()]
    batch = TurnBatch(turns=turns, advantages=torch.ones(2), old_logprobs=torch.zeros(2),
                      episode=torch.tensor([0, 1]), returns=None, old_values=torch.ones(2), stats={"a": 1.0})
    moved = batch.to("meta")
    assert moved.turns is turns and moved.returns is None and moved.stats == {"a": 1.0}
    assert all(t.device.type == "meta" for t in (moved.advantages, moved.old_logprobs, moved.episode, moved.old_values))
    assert batch.advantages.device.type == "cpu"                       # the original stays where it was


def test_cuda_request_on_a_cpu_machine_fails_before_any_work(make_cfg):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    from agentgym.trainers.loop import Trainer

    t = Trainer(make_cfg("grpo", "model.device=cuda"))
    try:
        with pytest.raises(ConfigError, match="sees no CUDA GPU"):
            t.setup()
    finally:
        t.cleanup()


def test_out_of_memory_in_the_update_names_the_fix(make_cfg):
    from agentgym.trainers.loop import Trainer

    t = Trainer(make_cfg("grpo", "train.micro_batch_size=4"))
    try:
        t.setup()
        turns = [object()] * 8
        batch = TurnBatch(turns=turns, advantages=torch.zeros(8), old_logprobs=torch.zeros(8),
                          episode=torch.arange(8))

        def objective(ctx, mb, cfg):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 116.00 MiB.")

        algo = dataclasses.replace(t.algo, objective=objective)
        with pytest.raises(torch.cuda.OutOfMemoryError, match="train.micro_batch_size lower \\(now 4"):
            t._update(batch, algo, t.algo_cfg, t.optimizer, epochs=1, salt=0)
    finally:
        t.cleanup()


def _train(cfg):
    from agentgym.logger import read_metrics
    from agentgym.trainers.loop import Trainer

    t = Trainer(cfg)
    try:
        t.setup()
        t.train()
        devices = {p.device.type for p in t.model.parameters()}
        return devices, read_metrics(t.run_dir / "metrics.jsonl"), t.run_dir
    finally:
        t.cleanup()


@CUDA
@pytest.mark.parametrize("algo,mode", [("grpo", "choose"), ("grpo", "generate"), ("ppo", "choose"),
                                       ("bc", "choose")])
def test_train_on_cuda(make_cfg, algo, mode):
    extra = ["train.warm_start.episodes=4"] if algo == "ppo" else []
    devices, rows, _ = _train(make_cfg(algo, "model.device=cuda", f"policy.mode={mode}", *extra))
    assert devices == {"cuda"}
    losses = [r["losses/loss"] for r in rows if "losses/loss" in r]
    assert losses and all(torch.isfinite(torch.tensor(x)) for x in losses)
    assert "eval/success_rate" in rows[-1]


@CUDA
def test_spa_on_cuda_then_resume_on_cpu(tmp_path):
    """All four SPA stages on the GPU; the checkpoint then resumes on a CPU-only setting."""
    from agentgym.config import load_config

    args = ["rollout.pool=local", "rollout.num_envs=2", "train.episodes_per_iter=4", "train.minibatch_size=64",
            "eval.every=0", "eval.episodes=2", "checkpoint.every=1", f"output_dir={tmp_path}", "run_name=run",
            "train.warm_start.episodes=2", "train.warm_start.epochs=1", "algo.explore_episodes=6",
            "algo.estimator_epochs=1", "env.max_turns=4", "logging.progress=false", "logging.tensorboard=false"]
    cfg = load_config(env="AgentgymTest-Progress-v0", algo="spa", overrides=args + ["train.iterations=1",
                                                                                      "model.device=cuda"])
    devices, rows, run = _train(cfg)
    assert devices == {"cuda"} and "spa/estimator_loss" in rows[-1]
    cfg = load_config(env="AgentgymTest-Progress-v0", algo="spa", overrides=args + [
        "train.iterations=2", "model.device=cpu", f"resume={run}/checkpoints/iter_000001"])
    devices, rows, _ = _train(cfg)
    assert devices == {"cpu"}
    assert [r["step"] for r in rows if "losses/loss" in r] == [1, 2]
