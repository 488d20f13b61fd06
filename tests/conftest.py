"""Fixtures shared by every test folder."""

import pytest

TINY_CORPUS = ["You see: a staircase down: 4 east, 3 south.", "go to the cabinet 1", "open the drawer", "take apple",
               "HP 12/12, depth 1, turn 3.", "Reach the staircase down (>)."] * 40


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory) -> str:
    """A small agentgym-tiny variant (400-token vocabulary) built once per test session, for the backend tests."""
    from agentgym.models import build_tiny

    path = tmp_path_factory.mktemp("tiny")
    build_tiny(path, corpus=TINY_CORPUS, vocab_size=400)
    return str(path)


@pytest.fixture(scope="session")
def skip_or_fail():
    """``skip_or_fail(why, strict_env)``: skip a test whose tool is missing here, but fail it where
    ``strict_env`` is set (.ci/run sets it after installing the tool, so a broken install cannot pass
    as a skip)."""
    import os

    def skip_or_fail(why: str, strict_env: str) -> None:
        if os.environ.get(strict_env):
            pytest.fail(f"{why} (and ${strict_env} is set: this machine must have it)")
        pytest.skip(why)

    return skip_or_fail
