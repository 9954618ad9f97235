"""Session set-up shared by every test.

Each real component the suite starts has one fixture module under ``tests/fixtures/`` (a look-alike
API, PostgreSQL, moto, fakesnow, Prefect); they are all loaded here as pytest plugins, so a new
component is a new file there and nothing else.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# A hermetic suite: no dlt setting from the developer's shell or .envrc changes a test's outcome. dlt
# reads every `SECTION__KEY` variable (SOURCES__, DESTINATION__, RUNTIME__, NORMALIZE__, LOAD__,
# EXTRACT__, PROVIDERS__, DATA_WRITER__, <PIPELINE>__...) and a few `DLT_*` ones (DLT_PROJECT_DIR,
# DLT_CONFIG_FOLDER, ...); all are cleared before dlt is imported, so the tests' subprocesses, which
# inherit this environment, start clean too (tests/test_hermetic.py).
for _name in list(os.environ):
    if "__" in _name or _name.startswith("DLT_"):
        del os.environ[_name]

# Settings that must be in place before dlt or Prefect are first imported.
_SESSION_TMP = Path(tempfile.mkdtemp(prefix="data-pipelines-tests-"))
os.environ.update(
    {
        "PREFECT_HOME": str(_SESSION_TMP / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
        "DO_NOT_TRACK": "1",
        "RUNTIME__DLTHUB_TELEMETRY": "false",
        # Keep HTTP retries real but fast: 3 attempts, tiny exponential backoff.
        "RUNTIME__REQUEST_MAX_ATTEMPTS": "3",
        "RUNTIME__REQUEST_BACKOFF_FACTOR": "0.01",
        "RUNTIME__REQUEST_MAX_RETRY_DELAY": "1",
        "RUNTIME__REQUEST_TIMEOUT": "20",
        # No test may fall back to Snowflake or the developer's own warehouse or pipeline folders.
        "DLT__DESTINATION": "duckdb",
        "DLT_DATA_DIR": str(_SESSION_TMP / "dlt"),
        "DESTINATION__DUCKDB__CREDENTIALS": str(_SESSION_TMP / "session.duckdb"),
    }
)
for _name in list(os.environ):  # the vault must be switched on explicitly by the tests that use it
    if _name.startswith(("PROVIDERS__", "AWS_ENDPOINT_URL")):
        del os.environ[_name]

pytest_plugins = sorted(
    f"tests.fixtures.{path.stem}"
    for path in (Path(__file__).parent / "fixtures").glob("*.py")
    if path.stem != "__init__"
)
