"""Fixtures of the fuzz tests; the hypothesis profiles are in ``tests/fixtures/fuzz.py``."""

from __future__ import annotations

import pytest

from tests.reliability.test_secrets import LeakTrap


@pytest.fixture
def leaks(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> LeakTrap:
    """The secret-leak trap of ``tests/reliability/test_secrets.py``: reset it at the start of an example
    and check it at the end (one trap serves every example of a test)."""
    return LeakTrap(caplog, capfd)
