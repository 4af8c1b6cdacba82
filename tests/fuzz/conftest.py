"""Hypothesis settings for the fuzz suite.

Two profiles, applied per test through `FUZZ` (never loaded globally, so other suites' hypothesis tests
keep their own settings):

- `fuzz` (the default, what `make test` runs): `derandomize=True`, so every run draws the same examples
  from a seed derived from each test's source and CI is reproducible; no example database is read or
  written; `deadline=None` because every example makes database round trips whose timing is noise on a
  loaded 2-core machine (hangs are caught by pytest-timeout and by the template render budget instead).
- `fuzz-deep` (`FUZZ_PROFILE=fuzz-deep`): random seeds and ten times the examples, for a longer local
  hunt. A failure there prints the `@reproduce_failure` blob to pin it.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, event, settings
from hypothesis.control import currently_in_test_context

# The Django test client, the database and the clients are function-scoped fixtures shared by all
# examples of one test; each property counts rows before and after its own example instead of relying
# on a fresh database per example.
_SHARED = {
    "deadline": None,
    "database": None,
    "suppress_health_check": (HealthCheck.function_scoped_fixture, HealthCheck.too_slow),
    "print_blob": True,
}
settings.register_profile("fuzz", derandomize=True, **_SHARED)
settings.register_profile("fuzz-deep", derandomize=False, **_SHARED)

PROFILE = os.environ.get("FUZZ_PROFILE", "fuzz")
_SCALE = 10 if PROFILE == "fuzz-deep" else 1


def fuzz(max_examples: int) -> settings:
    """The suite's profile with this test's number of examples (scaled up by `fuzz-deep`)."""
    return settings(settings.get_profile(PROFILE), max_examples=max_examples * _SCALE)


def tally(label: str) -> None:
    """Counts an outcome for `--hypothesis-show-statistics` (so a property whose examples are all
    refused for one dull reason shows up); a no-op outside a hypothesis example."""
    if currently_in_test_context():
        event(label)
