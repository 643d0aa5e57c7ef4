"""Shared test configuration: hypothesis profiles and the matplotlib backend."""

import os

import matplotlib

matplotlib.use("Agg")

from hypothesis import HealthCheck, settings  # noqa: E402

# numba compiles on first use, so the first example of a property can take
# seconds: no deadlines.  "ci" is the default; "dev" is quicker.
settings.register_profile(
    "ci", max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("DYNMEM_HYPOTHESIS_PROFILE", "ci"))
