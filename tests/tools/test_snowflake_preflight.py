"""The Snowflake preflight (tools/snowflake_preflight.py) against the emulator, with the fixture's login.

fakesnow has no users, roles, warehouses or grants. Two emulator-side patches
(``tests/snowflake_emulator/patches.py``) make it answer as Snowflake does where the preflight looks:
``session_identity`` answers ``CURRENT_USER/ROLE/WAREHOUSE()`` (``NULL`` warehouse: the role may not use
it), ``deny`` refuses a statement with Snowflake's access-control error. Everything else - dlt's
credential resolution, the key-pair login, the connector, PUT, COPY, MERGE - is real.
"""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.snowflake import CREDENTIALS_ENV, Snowflake
from tests.snowflake_emulator import patches
from tools.secrets import main
from tools.snowflake_preflight import SCRATCH_PREFIX, preflight

pytestmark = pytest.mark.snowflake


def configured(name: str) -> str:
    """The fixture's credential setting ``name`` (``USERNAME``, ``ROLE``, ``WAREHOUSE``)."""
    return os.environ[CREDENTIALS_ENV + name]


@pytest.fixture
def identity(snowflake: Snowflake) -> Iterator[None]:
    """The emulator answers with the fixture's user, role and warehouse, as Snowflake would."""
    if snowflake.mode != "emulator":
        yield
        return
    undo = patches.session_identity(configured("USERNAME"), configured("ROLE"), configured("WAREHOUSE"))
    yield
    undo()


def emulator_only(snowflake: Snowflake) -> None:
    if snowflake.mode != "emulator":
        pytest.skip("models a missing privilege with the emulator's patches")


def run_preflight() -> tuple[int, str]:
    out = io.StringIO()
    code = preflight(out=out)
    return code, out.getvalue()


def secrets() -> list[str]:
    """Every secret value the preflight had: none may appear in its output."""
    names = ("PRIVATE_KEY", "PRIVATE_KEY_PASSPHRASE", "PASSWORD")
    return [os.environ[CREDENTIALS_ENV + n] for n in names if os.environ.get(CREDENTIALS_ENV + n)]


def assert_no_secret(output: str) -> None:
    assert secrets(), "the fixture configures a key pair"
    for value in secrets():
        assert value not in output and value[:40] not in output
    assert "PRIVATE KEY" not in output


def scratch_schemas(snowflake: Snowflake) -> list[str]:
    rows = snowflake.query(
        "select schema_name from information_schema.schemata where catalog_name = %s",
        snowflake.database.upper(),
    )
    return [r[0] for r in rows if r[0].startswith(SCRATCH_PREFIX)]


def test_ready_with_the_fixture_credentials(snowflake: Snowflake, identity: None) -> None:
    code, output = run_preflight()

    assert code == 0, output
    assert output.splitlines()[-1] == "ready"
    if snowflake.mode == "emulator":
        assert (configured("USERNAME"), configured("ROLE")) == ("SVC_DLT", "SVC_DLT_ROLE")  # setup.sql's
    assert f"  user       {configured('USERNAME')}\n" in output
    assert f"  role       {configured('ROLE')}\n" in output and f"  database   {snowflake.database}" in output
    for step in ("create its staging schema", "PUT a parquet file", "COPY it into the table",
                 "merge from staging", "replace from staging", "the loaded rows are all there"):  # fmt: skip
        assert f"ok    {step}" in output
    assert "FAIL" not in output
    assert_no_secret(output)
    assert scratch_schemas(snowflake) == []  # dropped afterwards


def test_cli_exit_code_and_output(snowflake: Snowflake, identity: None) -> None:
    """``python -m tools.secrets preflight`` in its own process, configured only by the environment."""
    result = subprocess.run(
        [sys.executable, "-m", "tools.secrets", "preflight"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "ready"
    assert_no_secret(result.stdout + result.stderr)


def test_warehouse_the_role_may_not_use(snowflake: Snowflake) -> None:
    """Snowflake leaves CURRENT_WAREHOUSE() NULL when the role lacks USAGE: the preflight names the grant."""
    emulator_only(snowflake)
    undo = patches.session_identity(configured("USERNAME"), configured("ROLE"), None)
    try:
        code, output = run_preflight()
    finally:
        undo()

    assert code == 1
    assert "FAIL  session has a warehouse" in output
    assert "fix: GRANT USAGE ON WAREHOUSE LOADING TO ROLE SVC_DLT_ROLE;" in output
    assert output.splitlines()[-1].startswith("not ready: 1 check(s) failed")
    assert "create a dataset schema" not in output  # nothing is tried without a warehouse
    assert_no_secret(output)


def test_session_in_another_role(snowflake: Snowflake) -> None:
    emulator_only(snowflake)
    undo = patches.session_identity(configured("USERNAME"), "PUBLIC", configured("WAREHOUSE"))
    try:
        code, output = run_preflight()
    finally:
        undo()

    assert code == 1
    assert "FAIL  session role is SVC_DLT_ROLE: the session runs as role PUBLIC" in output
    assert "fix: GRANT ROLE SVC_DLT_ROLE TO USER SVC_DLT;" in output


def test_role_without_create_schema(snowflake: Snowflake, identity: None) -> None:
    """The first privilege a fresh account misses: dlt creates <DATASET> and <DATASET>_STAGING itself."""
    emulator_only(snowflake)
    undo = patches.deny(
        r"^CREATE SCHEMA", f"Insufficient privileges to operate on database '{snowflake.database}'"
    )
    try:
        code, output = run_preflight()
    finally:
        undo()

    assert code == 1
    assert "FAIL  create a dataset schema" in output
    assert "SQL access control error: Insufficient privileges to operate on database" in output
    assert f"fix: GRANT CREATE SCHEMA ON DATABASE {snowflake.database} TO ROLE SVC_DLT_ROLE;" in output
    assert "PUT a parquet file" not in output  # later steps depend on the schema
    assert scratch_schemas(snowflake) == []


def test_table_stage_refused(snowflake: Snowflake, identity: None) -> None:
    """PUT to a table stage needs the table's ownership: reported, and the scratch schemas still dropped."""
    emulator_only(snowflake)
    undo = patches.deny(r"^PUT ", "Insufficient privileges to operate on table stage 'PREFLIGHT'")
    try:
        code, output = run_preflight()
    finally:
        undo()

    assert code == 1
    assert "ok    create a table" in output
    assert "FAIL  PUT a parquet file to the table's stage" in output
    assert "fix: only the table's owner may use its stage" in output
    assert scratch_schemas(snowflake) == []


def test_wrong_passphrase_fails_to_connect_without_revealing_it(
    snowflake: Snowflake, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patch:  # the fixture's clean-up needs the right one back
        patch.setenv(CREDENTIALS_ENV + "PRIVATE_KEY_PASSPHRASE", "not-the-passphrase-x1")
        code, output = run_preflight()

    assert code == 1
    assert "FAIL  connect: Could not decode private key" in output
    assert output.splitlines()[-1] == "not ready"
    assert_no_secret(output)
    assert "not-the-passphrase-x1" not in output


def test_missing_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("DESTINATION__SNOWFLAKE__"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(os.path.dirname(__file__))  # no .dlt/secrets.toml here
    assert main(["preflight"]) == 1


def test_ready_with_a_key_file(
    snowflake: Snowflake, identity: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The local form of docs/snowflake.md step 3: private_key_path and its passphrase."""
    key_file = tmp_path / "snowflake_svc_dlt.p8"
    key_file.write_bytes(base64.b64decode(configured("PRIVATE_KEY")))
    with monkeypatch.context() as patch:
        patch.delenv(CREDENTIALS_ENV + "PRIVATE_KEY")
        patch.setenv(CREDENTIALS_ENV + "PRIVATE_KEY_PATH", str(key_file))
        code, output = run_preflight()

    assert code == 0, output
    assert "key pair authentication" in output and output.splitlines()[-1] == "ready"
    assert key_file.read_text().splitlines()[1] not in output
