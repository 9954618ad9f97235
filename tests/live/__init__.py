"""Opt-in suites against the real provider APIs (``LIVE_TESTS=1 uv run pytest -m live``)."""
