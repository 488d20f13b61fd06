"""ALFWorld (TextWorld engine) household tasks as text envs. One id; the split, data folder and
task types are kwargs (``split=eval_in_distribution`` plays the 140 real valid_seen games, see
docs/envs/alfworld.md). The default trains on the embedded generated games, offline."""

from agentgym.registry import register

register(id="ALFWorld-v0", entry_point="agentgym.envs.alfworld.env:AlfWorldEnv", family="alfworld", max_turns=50,
         description="ALFWorld text games (6 task types). Default: generated training games (offline); "
                     "kwargs split=eval_in_distribution|eval_out_of_distribution + data_dir for the real ones.")
