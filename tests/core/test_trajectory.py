import datasets

from agentgym.trajectory import Trajectory, Turn, load_jsonl, save_jsonl, save_parquet, to_turn_records


def make_trajectories():
    t1 = Turn(observation="You see a key.", action="east", response="east", prompt_ids=[1, 5, 7],
              response_ids=[9, 2], response_logprobs=[-0.5, -0.1], reward=0.0, info={"invalid_action": False})
    t2 = Turn(observation="Stairs: 1 south.", action="south", response="south", prompt_ids=[1, 5, 7, 9, 2, 8],
              response_ids=[11, 2], response_logprobs=[-0.2, -0.05], reward=1.0, terminated=True,
              info={"success": True}, candidate_ids=[[10, 2], [11, 2]], choice=1, choice_logprob=-0.3)
    return [Trajectory("Toy-v0", seed=3, instruction="go", turns=[t1, t2], success=True, group=1),
            Trajectory("Toy-v0", seed=4, turns=[t1], success=False, group=2)]


def test_loss_mask_and_old_logprob():
    t1, t2 = make_trajectories()[0].turns
    assert t1.loss_mask() == [0, 0, 0, 1, 1]
    assert abs(t1.old_logprob() - (-0.6)) < 1e-9
    assert t2.old_logprob() == -0.3  # choose mode: the choice's log-prob, not the token sum
    assert make_trajectories()[0].episode_return == 1.0


def test_jsonl_round_trip_and_datasets(tmp_path):
    trajs = make_trajectories()
    path = save_jsonl(trajs, tmp_path / "t.jsonl")
    back = load_jsonl(path)
    assert back[0].turns[1].response_ids == [11, 2] and back[0].turns[1].choice == 1
    assert back[0].success and back[1].episode_return == 0.0
    ds = datasets.load_dataset("json", data_files=str(path), split="train")
    assert ds.num_rows == 2 and ds[0]["turns"][0]["prompt_ids"] == [1, 5, 7]


def test_parquet_turn_rows_load_in_datasets(tmp_path):
    trajs = make_trajectories()
    rows = to_turn_records(trajs)
    assert len(rows) == 3 and rows[1]["loss_mask"] == [0] * 6 + [1, 1]
    path = save_parquet(trajs, tmp_path / "t.parquet")
    ds = datasets.load_dataset("parquet", data_files=str(path), split="train")
    assert ds.num_rows == 3
    assert ds[1]["response_logprobs"] == [-0.2, -0.05] and ds[1]["success"] is True
