"""Secrets never leak: canary values planted in every secret, looked for everywhere a value could land.

Where: log records of every logger at DEBUG (caplog), everything printed by the process or its C
libraries (capfd), exception text, dlt's load trace (``last_trace`` as text and as a dict, and the
``trace.pickle`` file with every other file in the pipeline folder), and Prefect's run artefacts, run
logs and state messages - for successful and failed runs alike. Existing proofs this builds on:
``tests/pipelines/test_hubspot.py::test_the_token_is_never_printed_logged_or_traced`` (the CLI),
``tests/utils/test_vault_provider.py::test_canary_values_never_reach_logs_output_or_errors`` (vault
errors and the check/push CLI),
``tests/sources/test_exchange_rates.py::test_oxr_errors_never_show_the_app_id`` and
``tests/utils/test_snowflake_key_pair.py::test_wrong_passphrase_fails_without_revealing_it``.
"""

from __future__ import annotations

import base64
import json
import logging
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import dlt
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from tests.fakes.hubspot import FakeHubSpot
from tests.fakes.openexchangerates import FakeOpenExchangeRates
from tests.fixtures.frankfurter import FAKE_TODAY
from tests.fixtures.vault import Vault
from tests.fixtures.warehouse import Warehouse
from tests.reliability.scenarios import REPO_ROOT

pytestmark = pytest.mark.reliability

HUBSPOT_CANARY = "pat-eu1-CANARY-3b9d0c1e-77aa-4e21-9f0d-5c6b7a8e9f10"  # pragma: allowlist secret


class LeakTrap:
    """Everything a secret could show up in during one test, and the check that it does not."""

    def __init__(self, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
        self.caplog, self.capfd = caplog, capfd
        self.texts: list[str] = []
        caplog.set_level(logging.DEBUG)

    def reset(self) -> None:
        """Forget what the test's own set-up logged or printed (a secret it planted, say)."""
        self.caplog.clear()
        self.capfd.readouterr()

    def add(self, *texts: Any) -> None:
        self.texts += [t if isinstance(t, str) else json.dumps(t, default=str) for t in texts]

    def add_pipeline(self, pipeline: dlt.Pipeline) -> None:
        """dlt's last trace, as text and as a dict, and every file of the pipeline's folder."""
        trace = pipeline.last_trace
        assert trace is not None, "the run left a trace"
        self.add(str(trace), trace.asdict())
        for path in Path(pipeline.working_dir).rglob("*"):
            if path.is_file():
                self.texts.append(path.read_bytes().decode("latin-1"))

    def assert_clean(self, secrets: Iterable[str]) -> None:
        captured = self.capfd.readouterr()
        texts = [*self.texts, self.caplog.text, captured.out, captured.err]
        for secret in secrets:
            assert len(secret) >= 8
            leaks = [t[max(0, t.find(secret) - 80) : t.find(secret) + 80] for t in texts if secret in t]
            assert not leaks, f"secret leaked: {leaks[0]!r}"


@pytest.fixture
def trap(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> LeakTrap:
    return LeakTrap(caplog, capfd)


def test_oxr_app_id_in_successful_and_failed_runs(
    oxr: FakeOpenExchangeRates, warehouse: Warehouse, trap: LeakTrap, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines import exchange_rates

    for name, value in {
        "PROVIDER": "openexchangerates",
        "BASE_URL": oxr.base_url,
        "APP_ID": oxr.app_id,
        "AS_OF": FAKE_TODAY.isoformat(),
        "QUOTES": '["GBP"]',
        "BASE_CURRENCY": "USD",
    }.items():
        monkeypatch.setenv(f"SOURCES__EXCHANGE_RATES__{name}", value)
    monkeypatch.setenv("RUNTIME__LOG_LEVEL", "DEBUG")
    exchange_rates.run(backfill=True, start_date="2026-11-16", end_date="2026-11-17")
    trap.add_pipeline(exchange_rates.create_pipeline())
    assert oxr.requests, "the look-alike was asked"

    for status, times in ((503, 100), (401, 1)):  # an outage, then a rejected key
        oxr.fail(status, times=times)
        with pytest.raises(PipelineStepFailed) as exc:
            exchange_rates.run(backfill=True, start_date="2026-11-18", end_date="2026-11-19")
        oxr.reset()
        trap.add(str(exc.value), repr(exc.value), exc.value.run_report.to_markdown())  # type: ignore[attr-defined]
        trap.add_pipeline(exchange_rates.create_pipeline())
    assert exchange_rates.main(["--backfill", "--start-date", "2026-11-18"]) == 0
    trap.assert_clean([oxr.app_id])


@pytest.mark.usefixtures("prefect_harness")
def test_hubspot_token_in_prefect_artefacts_logs_and_states(
    hubspot: FakeHubSpot, warehouse: Warehouse, trap: LeakTrap, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flows.hubspot as flow_module
    from pipelines import hubspot as pipeline
    from tests.fixtures.prefect import artifacts, asset_events, logs, without_retry_delay

    without_retry_delay(monkeypatch, flow_module, "load_hubspot")
    hubspot.token = HUBSPOT_CANARY
    monkeypatch.setenv("SOURCES__HUBSPOT__API_KEY", HUBSPOT_CANARY)
    hubspot.add("contacts", 30)
    states = [flow_module.hubspot_flow(objects=["contacts"], return_state=True)]
    assert states[0].is_completed()
    trap.add_pipeline(pipeline.create_pipeline())
    hubspot.token = "rotated"  # the canary is now rejected: 401 on every attempt
    sent_before = len(hubspot.requests)
    states.append(flow_module.hubspot_flow(objects=["contacts"], return_state=True))
    assert states[1].is_failed()
    rejected = hubspot.requests[sent_before:]  # each carried the canary, which the look-alike answers 401
    assert rejected and all(r.headers.get("authorization") == f"Bearer {HUBSPOT_CANARY}" for r in rejected)
    trap.add_pipeline(pipeline.create_pipeline())
    for state in states:
        run_id = state.state_details.flow_run_id
        reports = [f"{a.data}\n{a.description}" for a in artifacts(run_id)]
        assert reports and any("hubspot" in str(r) for r in reports)
        events = [e.model_dump_json() for e in asset_events(run_id, expect=int(state.is_completed()))]
        trap.add(str(state.message), *reports, *[r.message for r in logs(run_id)], *events)
    message = str(states[1].message)
    assert "401 INVALID_AUTHENTICATION" in message and "token was rejected" in message, message
    trap.assert_clean([HUBSPOT_CANARY])


def test_vault_values_never_reach_the_trace_or_pipeline_folder(
    vault: Vault, hubspot: FakeHubSpot, warehouse: Warehouse, trap: LeakTrap, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines import hubspot as pipeline

    monkeypatch.delenv("SOURCES__HUBSPOT__API_KEY")
    hubspot.token = HUBSPOT_CANARY
    vault.put("dlt/sources/hubspot", {"api_key": HUBSPOT_CANARY})
    vault.reload()
    trap.reset()  # botocore logged the test's own create_secret request
    hubspot.add("deals", 5)
    assert pipeline.run(objects=["deals"]).rows_by_table == {"deals": 5}, "the token came from the vault"
    trap.add_pipeline(pipeline.create_pipeline())
    hubspot.fail(500, times=100)
    with pytest.raises(PipelineStepFailed) as exc:
        pipeline.run(objects=["deals"])
    trap.add(str(exc.value), exc.value.run_report.to_markdown())  # type: ignore[attr-defined]
    trap.add_pipeline(pipeline.create_pipeline())
    trap.assert_clean([HUBSPOT_CANARY])


@pytest.mark.snowflake
def test_snowflake_key_and_passphrase_in_successful_and_failed_runs(
    frankfurter: Any, snowflake: Any, trap: LeakTrap, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from pipelines import currencies

    prefix = "DESTINATION__SNOWFLAKE__CREDENTIALS__"
    key, passphrase = os.environ[prefix + "PRIVATE_KEY"], os.environ[prefix + "PRIVATE_KEY_PASSPHRASE"]
    currencies.run()
    trap.add_pipeline(currencies.create_pipeline())
    wrong = "CANARY-wrong-passphrase-5e7c"  # pragma: allowlist secret
    with monkeypatch.context() as patch, pytest.raises(PipelineStepFailed) as exc:
        patch.setenv(prefix + "PRIVATE_KEY_PASSPHRASE", wrong)
        patch.setenv(prefix + "PASSWORD", "CANARY-password-0a9b8c")  # pragma: allowlist secret
        currencies.run()
    trap.add(str(exc.value), repr(exc.value), exc.value.run_report.to_markdown())  # type: ignore[attr-defined]
    trap.add_pipeline(currencies.create_pipeline())
    trap.assert_clean([passphrase, wrong, "CANARY-password-0a9b8c", *key_forms(key, passphrase)])


def key_forms(key_b64: str, passphrase: str) -> list[str]:
    """Slices of every form the private key takes on its way to the connector: the base64 PEM as
    configured, the PEM's own base64 body, the encrypted DER bytes and the decrypted key (DER and its
    base64), which dlt hands to the connector. Bytes are compared as latin-1, as the trap reads files."""
    from cryptography.hazmat.primitives import serialization

    pem = key_b64.encode() if key_b64.startswith("-----BEGIN") else base64.b64decode(key_b64)
    body = [line for line in pem.decode().splitlines() if line and not line.startswith("-----")]
    assert len(body) > 10, "a PEM with a base64 body"
    der = base64.b64decode("".join(body))
    private = serialization.load_pem_private_key(pem, passphrase.encode())
    plain = private.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    forms = [
        key_b64[40:100],
        body[3],
        der[200:260].decode("latin-1"),
        plain[200:260].decode("latin-1"),
        base64.b64encode(plain).decode()[200:260],
    ]
    assert len(set(forms)) == len(forms)
    return forms


# never committed ----------------------------------------------------------------------------------
@pytest.mark.parametrize("path", [".dlt/secrets.toml", "pipelines/.dlt/secrets.toml", ".env", ".envrc"])
def test_local_secret_files_are_git_ignored(path: str) -> None:
    result = subprocess.run(["git", "check-ignore", "--no-index", "-q", path], cwd=REPO_ROOT)
    assert result.returncode == 0, f"{path} is not git-ignored"


def scan(repository: Path) -> subprocess.CompletedProcess[str]:
    """Run ``.ci/secret-scan`` (what CI runs) over ``repository``'s tracked files."""
    script = repository / ".ci" / "secret-scan"
    return subprocess.run(["bash", str(script)], cwd=repository, capture_output=True, text=True)


def test_tracked_files_hold_no_secret_beyond_the_reviewed_baseline() -> None:
    result = scan(REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_real_looking_secret_in_a_new_file_is_caught(tmp_path: Path) -> None:
    aws_key = "AKIAZ7Q3XN4LP2WBT6KD"  # pragma: allowlist secret
    token = "9f8e7d6c5b4a43928e1f0a2b3c4d5e6fa7b8c9d0e1f2"  # pragma: allowlist secret
    project = tmp_path / "project"
    (project / ".ci").mkdir(parents=True)
    shutil.copy(REPO_ROOT / ".ci" / "secret-scan", project / ".ci" / "secret-scan")
    shutil.copy(REPO_ROOT / ".secrets.baseline", project / ".secrets.baseline")
    (project / "settings.py").write_text(f'AWS_ACCESS_KEY_ID = "{aws_key}"\nHUBSPOT_TOKEN = "{token}"\n')
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    subprocess.run(["git", "add", "."], cwd=project, check=True)
    result = scan(project)
    assert result.returncode != 0, result.stdout + result.stderr
    assert "settings.py" in result.stdout and "AWS Access Key" in result.stdout
