"""The leaderboard's one error type, so the CLI can print its one sentence instead of a traceback."""


class LeaderboardError(ValueError):
    """Bad leaderboard input (a suite, a policy, a results folder); the message is one sentence."""
