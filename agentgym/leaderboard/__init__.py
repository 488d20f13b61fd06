"""The leaderboard: fixed evaluation suites, per-episode results with error bars, a static board."""
