import os

import pytest


@pytest.fixture(scope="module")
def ray_up():
    """Ray started once per module (it takes seconds), shut down after if this fixture started it."""
    import ray

    started = not ray.is_initialized()
    if started:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield ray
    if started:
        ray.shutdown()
