"""dlt settings exported in a developer's shell (or .envrc) change no test's outcome (tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
BOGUS_DSN = "postgresql://bogus:bogus@127.0.0.1:1/bogus"  # pragma: allowlist secret
SHELL: dict[str, str] = {
    # a developer pointing products at a local database: the vault test must still read the vault
    "SOURCES__PRODUCTS__CREDENTIALS": BOGUS_DSN,
    "DESTINATION__DUCKDB__CREDENTIALS": "/nonexistent/elsewhere.duckdb",
    "RUNTIME__LOG_LEVEL": "CRITICAL",
    "NORMALIZE__WORKERS": "not-a-number",
    "LOAD__WORKERS": "not-a-number",
    "EXTRACT__WORKERS": "not-a-number",
    "DATA_WRITER__BUFFER_MAX_ITEMS": "not-a-number",
    "PROVIDERS__ENABLE_AWS_SECRETS": "true",  # pragma: allowlist secret
    "PRODUCTS__SOURCES__PRODUCTS__CREDENTIALS": BOGUS_DSN,
    "DLT_PROJECT_DIR": "/nonexistent",
}
TESTS = (
    "tests/utils/test_vault_provider.py::test_every_pipeline_resolves_its_documented_secrets_from_the_vault[products]",
    "tests/utils/test_duckdb_loads.py::test_a_column_missing_from_this_loads_files_reads_as_null",
)


def test_dlt_settings_in_the_shell_change_no_outcome() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *TESTS, "-n0", "-q", "-p", "no:cacheprovider"],
        cwd=REPO_ROOT,
        env=os.environ | SHELL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert f"{len(TESTS)} passed" in result.stdout
