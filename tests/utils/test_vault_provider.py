"""The AWS Secrets Manager vault in dlt's config chain, against the moto server over HTTP."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path
from typing import Any

import boto3
import dlt
import pytest
from dlt.common.configuration.exceptions import ConfigFieldMissingException
from dlt.common.configuration.providers.aws_secrets import AwsSecretsManagerProvider
from dlt.common.configuration.resolve import resolve_configuration
from dlt.destinations.impl.snowflake.configuration import SnowflakeCredentials

import declarations as catalogue
from tests.fakes.frankfurter import FakeFrankfurter
from tests.fixtures.vault import REPO_DLT, Vault
from tests.fixtures.warehouse import Warehouse
from tools import secrets as secrets_cli
from tools.secrets import check_pipeline
from utils import vault_provider
from utils.vault_provider import VaultError

pytestmark = pytest.mark.reliability

REPO = Path(__file__).resolve().parents[2]


def canary(label: str) -> str:
    return f"canary-{label}-{uuid.uuid4().hex}"


def snowflake_credentials() -> SnowflakeCredentials:
    return resolve_configuration(
        SnowflakeCredentials(), sections=("destination", "snowflake"), accept_partial=True
    )


@dlt.source(section="vault_canary", name="vault_canary")
def canary_source(api_key: str = dlt.secrets.value, region: str = "eu") -> Any:
    """A source with one required secret, as HubSpot's or any API source's key would be."""
    return dlt.resource([{"region": region, "api_key": api_key}], name="rows")


def rows() -> dict[str, Any]:
    """The config the canary source was called with: resolved by dlt exactly as in a pipeline."""
    return dict(next(iter(canary_source().resources["rows"])))


def example_sections() -> dict[tuple[str, ...], dict[str, Any]]:
    """Every table of ``.dlt/secrets.toml.example``: the documented secrets of every pipeline."""
    tables: dict[tuple[str, ...], dict[str, Any]] = {}

    def walk(node: dict[str, Any], path: tuple[str, ...]) -> None:
        leaves = {k: v for k, v in node.items() if not isinstance(v, dict)}
        if leaves:
            tables[path] = leaves
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, (*path, key))

    walk(tomllib.loads((REPO_DLT / "secrets.toml.example").read_text()), ())
    return tables


def vault_form(section: tuple[str, ...], keys: dict[str, Any], pem: str) -> dict[str, Any]:
    """Canary values for a documented section, in the vault form (a key file becomes the key)."""
    document = {key: canary(".".join((*section, key))) for key in keys}
    for key, example in keys.items():  # a connection string keeps its shape, with a canary password
        if isinstance(example, str) and "://" in example:
            document[key] = re.sub(r"<[^>]+>", canary(".".join((*section, key))), example)
    if "private_key_path" in document:
        del document["private_key_path"]
        document["private_key"] = pem
        document.pop("private_key_passphrase", None)
    return document


# -- every pipeline --------------------------------------------------------------------------------
SNOWFLAKE_KEYS = {
    f"destination.snowflake.credentials.{k}"
    for k in ("host", "database", "username", "role", "warehouse", "private_key")
}
S3_KEYS = {f"destination.filesystem.credentials.{k}" for k in ("aws_access_key_id", "aws_secret_access_key")}
EXPECTED_FROM_VAULT: dict[str, set[str]] = {
    "currencies": SNOWFLAKE_KEYS,
    "exchange_rates": S3_KEYS,  # optional (the AWS chain is the default), documented, put in the vault here
    "hubspot": SNOWFLAKE_KEYS | {"sources.hubspot.api_key"},
    "products": SNOWFLAKE_KEYS | {"sources.products.credentials"},
}
"""Pinned by the test, not taken from the code under test: the keys each pipeline reads from the vault."""
OPTIONAL_DOCUMENTS: dict[tuple[str, ...], dict[str, Any]] = {
    ("destination", "filesystem", "credentials"): dict.fromkeys(
        ("aws_access_key_id", "aws_secret_access_key")
    )
}
"""Documented (commented out) in ``.dlt/secrets.toml.example``; put in the vault too, to be checked."""


def test_every_pipeline_has_pinned_vault_keys() -> None:
    assert set(catalogue.pipelines()) == set(EXPECTED_FROM_VAULT), "pin the vault keys of a new pipeline here"
    assert all(EXPECTED_FROM_VAULT.values())


@pytest.mark.parametrize("pipeline", sorted(EXPECTED_FROM_VAULT))
def test_every_pipeline_resolves_its_documented_secrets_from_the_vault(
    pipeline: str, vault: Vault, monkeypatch: pytest.MonkeyPatch, rsa_pem: str
) -> None:
    monkeypatch.delenv("DLT__DESTINATION")  # the production destination and its credentials
    before = check_pipeline(pipeline)
    documents = {}
    for section, keys in {**example_sections(), **OPTIONAL_DOCUMENTS}.items():
        documents[section] = vault_form(section, keys, rsa_pem)
        vault.put("dlt/" + "/".join(section), documents[section])
    vault.reload()

    result = check_pipeline(pipeline)

    assert result.ok, secrets_cli.format_check(result)
    from_vault = [k for k in result.keys if k.origin == "vault"]
    assert {k.key for k in from_vault} == EXPECTED_FROM_VAULT[pipeline], secrets_cli.format_check(result)
    # whatever the pipeline needed and no other provider had now comes from the vault ...
    # (a credentials object given as one native value, e.g. a connection string, covers its fields)
    vaulted = {k.key for k in from_vault}
    for missing in (k.key for k in before.keys if k.missing):
        assert any(missing == v or missing.startswith(v + ".") for v in vaulted), missing
    # ... from the secret named after its section, holding exactly the documented value
    for key in from_vault:
        assert key.location == "dlt/" + "/".join(key.section)
        assert dlt.secrets.get(key.key) == documents[key.section][key.key.split(".")[-1]]


def test_check_cli_lists_keys_and_origins_without_values(
    vault: Vault, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], rsa_pem: str
) -> None:
    monkeypatch.delenv("DLT__DESTINATION")
    username = canary("username")
    vault.put(
        "dlt/destination/snowflake/credentials",
        {"host": "acme-main", "username": username, "private_key": rsa_pem},
    )
    monkeypatch.setenv("DESTINATION__SNOWFLAKE__CREDENTIALS__DATABASE", "RAW")

    assert secrets_cli.main(["check", "currencies"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[2:]}
    assert lines["destination.snowflake.credentials.host"].endswith(
        "vault (dlt/destination/snowflake/credentials)"
    )
    assert lines["destination.snowflake.credentials.database"].endswith("env")
    assert lines["sources.currencies.provider"].endswith("config.toml")
    assert username not in out and "BEGIN PRIVATE KEY" not in out and "acme-main" not in out

    monkeypatch.delenv("DESTINATION__SNOWFLAKE__CREDENTIALS__DATABASE")
    assert secrets_cli.main(["check", "currencies"]) == 1
    out = capsys.readouterr().out
    assert "MISSING required: destination.snowflake.credentials.database" in out
    assert secrets_cli.main(["check", "no_such_pipeline"]) == 2


# -- precedence ------------------------------------------------------------------------------------
def test_environment_beats_secrets_toml_beats_config_toml_beats_the_vault(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault.put("dlt/sources/vault_canary", {"api_key": "from-vault", "region": "vault-region"})
    vault.write_secrets_toml('[sources.vault_canary]\napi_key = "from-secrets-toml"\n')
    monkeypatch.setenv("SOURCES__VAULT_CANARY__API_KEY", "from-env")
    assert rows() == {"api_key": "from-env", "region": "vault-region"}

    monkeypatch.delenv("SOURCES__VAULT_CANARY__API_KEY")
    assert rows()["api_key"] == "from-secrets-toml"

    vault.write_secrets_toml("")
    assert rows()["api_key"] == "from-vault"

    with (vault.project / ".dlt" / "config.toml").open("a") as config:
        config.write('\n[sources.vault_canary]\nregion = "config-region"\n')
    vault.reload()
    assert rows() == {"api_key": "from-vault", "region": "config-region"}


def test_switch_off_means_no_vault_at_all(vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    vault.put("dlt/sources/vault_canary", {"api_key": "from-vault"})
    monkeypatch.setenv("PROVIDERS__ENABLE_AWS_SECRETS", "false")
    vault.reload()
    assert vault_provider.active_provider() is None
    assert dlt.secrets.get("sources.vault_canary.api_key") is None
    assert vault.proxy.requests == []


def test_nested_parent_secret_and_custom_prefix(vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    vault.put(
        "team-a/destination/snowflake",
        {"credentials": {"host": "nested-host", "database": "RAW", "username": "L", "password": "p"}},
    )
    monkeypatch.setenv("PROVIDERS__AWS_SECRETS__SECRET_NAME_PREFIX", "team-a/")
    vault.reload()
    credentials = resolve_configuration(
        SnowflakeCredentials(), sections=("destination", "snowflake"), accept_partial=True
    )
    assert (credentials.host, credentials.database) == ("nested-host", "RAW")
    assert all(name.startswith("team-a/") for name in vault.proxy.secret_reads())


@pytest.mark.slow
def test_source_created_before_any_pipeline_in_a_fresh_process(vault: Vault, tmp_path: Path) -> None:
    """dlt first builds its provider list inside a @dlt.source call: settings must still apply."""
    key = canary("fresh-process")
    vault.put("ops/sources/fresh/fresh", {"api_key": key})
    script = (
        "import dlt\n"
        "from utils import vault_provider\n"
        "vault_provider.register()  # what every entry point does first\n"
        "@dlt.source(section='fresh')\n"
        "def fresh(api_key: str = dlt.secrets.value):\n"
        "    print('length', len(api_key))\n"
        "    return dlt.resource([1], name='r')\n"
        "fresh()\n"
    )
    env = {**os.environ, "PROVIDERS__AWS_SECRETS__SECRET_NAME_PREFIX": "ops/", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"length {len(key)}" in done.stdout
    assert key not in done.stdout + done.stderr
    assert vault.proxy.secret_reads()["ops/sources/fresh/fresh"] == 1


# -- requests: each secret at most once per process ------------------------------------------------
def test_a_pipeline_run_reads_each_secret_at_most_once(
    vault: Vault, frankfurter: FakeFrankfurter, warehouse: Warehouse
) -> None:
    from pipelines import currencies

    vault.put("dlt/sources/currencies", {"include_legacy": True})
    currencies.run()
    currencies.run()
    dlt.secrets.get("sources.currencies.include_legacy")

    reads = vault.proxy.secret_reads()
    assert reads, "the vault was never asked"
    assert max(reads.values()) == 1, reads  # found and not-found alike
    assert reads["dlt/sources/currencies"] == 1
    assert len(reads) > 1  # absent sections were asked too: once each, then remembered
    # config.toml said include_legacy = false and outranks the vault: the run used it
    assert warehouse.scalar("select bool_and(is_active) from currencies.currencies") is True


# -- errors ----------------------------------------------------------------------------------------
def test_missing_secret_names_the_key_and_the_secrets_looked_up(vault: Vault) -> None:
    with pytest.raises(ConfigFieldMissingException) as exc:
        canary_source()
    text = str(exc.value)
    assert "api_key" in text
    assert "dlt/sources/vault_canary -> api_key" in text
    assert "dlt/sources/vault_canary/vault_canary -> api_key" in text


def test_malformed_json_names_key_and_secret_never_the_value(vault: Vault) -> None:
    value = canary("malformed")
    vault.put("dlt/sources/vault_canary", '{"api_key": "' + value + '",')  # truncated JSON
    with pytest.raises(VaultError) as exc:
        canary_source()
    text = str(exc.value)
    assert "dlt/sources/vault_canary" in text and "sources.vault_canary" in text and "not valid JSON" in text
    assert value not in text and exc.value.__cause__ is None

    vault.reload()
    vault.client().put_secret_value(SecretId="dlt/sources/vault_canary", SecretString=json.dumps(value))
    with pytest.raises(VaultError, match="holds a JSON str, not an object") as exc:
        canary_source()
    assert value not in str(exc.value)


def test_throttling_is_retried_then_fails_clearly_and_is_not_cached(vault: Vault) -> None:
    key = canary("throttled")
    vault.put("dlt/sources/vault_canary", {"api_key": key})
    vault.proxy.throttle(times=2)  # AWS_MAX_ATTEMPTS=2: both attempts throttled
    with pytest.raises(VaultError) as exc:
        canary_source()
    text = str(exc.value)
    assert "ThrottlingException" in text and "2 attempts" in text
    assert "dlt/sources/vault_canary" in text and "config key `sources.vault_canary" in text
    assert len(vault.proxy.calls("GetSecretValue")) == 2
    # the failure is not remembered: the next attempt (a task retry in the same process) succeeds
    assert rows()["api_key"] == key


def test_access_denied_names_key_and_secret(vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    from moto import settings as moto_settings

    vault.put("dlt/sources/vault_canary", {"api_key": canary("denied")})
    iam = vault.aws.client("iam")
    iam.create_user(UserName="loader-without-access")
    access_key = iam.create_access_key(UserName="loader-without-access")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", access_key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", access_key["SecretAccessKey"])
    monkeypatch.setattr(moto_settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # moto enforces IAM now
    vault.reload()
    with pytest.raises(VaultError) as exc:
        canary_source()
    text = str(exc.value)
    assert "AccessDeniedException" in text and "secretsmanager:GetSecretValue" in text
    assert "dlt/sources/vault_canary" in text and "sources.vault_canary" in text


def test_canary_values_never_reach_logs_output_or_errors(
    vault: Vault,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    rsa_pem: str,
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("RUNTIME__LOG_LEVEL", "DEBUG")
    monkeypatch.delenv("DLT__DESTINATION")
    secrets = {"api": canary("api"), "host": canary("host"), "user": canary("user")}
    vault.put("dlt/sources/vault_canary", {"api_key": secrets["api"]})
    vault.put(
        "dlt/destination/snowflake/credentials",
        {"host": secrets["host"], "username": secrets["user"], "private_key": rsa_pem, "database": "RAW"},
    )
    vault.reload()
    texts: list[str] = []
    assert rows()["api_key"] == secrets["api"]
    assert secrets_cli.main(["check", "currencies"]) == 0
    for broken in ('{"api_key": "' + secrets["api"] + '"', json.dumps(secrets["api"])):
        vault.client().put_secret_value(SecretId="dlt/sources/vault_canary", SecretString=broken)
        vault.reload()
        with pytest.raises(VaultError) as exc:
            canary_source()
        texts.append(str(exc.value))
    secrets_toml = tmp_path / "local-secrets.toml"
    secrets_toml.write_text(f'[sources.vault_canary]\napi_key = "{secrets["api"]}"\n')
    assert secrets_cli.main(["push", "sources.vault_canary", "--secrets-file", str(secrets_toml)]) == 0

    captured = capsys.readouterr()
    texts += [caplog.text, captured.out, captured.err]
    body = rsa_pem.splitlines()[1]
    for text in texts:
        for value in [*secrets.values(), body]:
            assert value not in text


# -- push --------------------------------------------------------------------------------------------
def test_push_creates_then_updates_a_section_secret(
    vault: Vault, tmp_path: Path, capsys: pytest.CaptureFixture[str], rsa_pem: str
) -> None:
    key_file = tmp_path / "loader.p8"
    key_file.write_text(rsa_pem)
    secrets_toml = tmp_path / "secrets.toml"
    secrets_toml.write_text(
        '[destination.snowflake.credentials]\nhost = "acme-main"\nusername = "LOADER"\n'
        f'private_key_path = "{key_file}"\n'
    )
    command = ["push", "destination.snowflake.credentials", "--secrets-file", str(secrets_toml)]
    assert secrets_cli.main(command) == 0
    secret = boto3.client("secretsmanager").get_secret_value(SecretId="dlt/destination/snowflake/credentials")
    assert json.loads(secret["SecretString"]) == {
        "host": "acme-main",
        "username": "LOADER",
        "private_key": rsa_pem,
    }

    secrets_toml.write_text('[destination.snowflake.credentials]\nhost = "acme-dr"\n')
    assert secrets_cli.main(command) == 0
    secret = boto3.client("secretsmanager").get_secret_value(SecretId="dlt/destination/snowflake/credentials")
    assert json.loads(secret["SecretString"]) == {"host": "acme-dr"}
    out = capsys.readouterr().out
    assert "created dlt/destination/snowflake/credentials with keys: host, private_key, username" in out
    assert "updated dlt/destination/snowflake/credentials with keys: host" in out
    assert "acme" not in out and "BEGIN" not in out
    assert snowflake_credentials().host == "acme-dr"  # the pushed value is what dlt now reads


def test_list_secrets_reads_only_secrets_that_exist(
    vault: Vault, frankfurter: FakeFrankfurter, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines import currencies

    vault.put("dlt/sources/currencies", {"include_legacy": True})
    vault.put("other-team/sources/currencies", {"include_legacy": True})
    monkeypatch.setenv("PROVIDERS__AWS_SECRETS__LIST_SECRETS", "true")
    vault.reload()
    currencies.run()
    assert dlt.secrets.get("sources.currencies.include_legacy") is True
    assert len(vault.proxy.calls("ListSecrets")) == 1
    assert vault.proxy.secret_reads() == {"dlt/sources/currencies": 1}


def test_the_private_dlt_methods_the_provider_relies_on_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """This dlt release has them; one that renames or reshapes one stops before any secret is read."""
    vault_provider.check_dlt_hooks()

    def renamed(self: Any, full_key: str, key: str, hint: type, pipeline: str | None, path: Any) -> None: ...

    monkeypatch.setattr(AwsSecretsManagerProvider, "_update_from_vault", renamed)
    monkeypatch.delattr(AwsSecretsManagerProvider, "_get_client")
    with pytest.raises(vault_provider.DltChangedError) as changed:
        vault_provider.build_provider()
    assert "AwsSecretsManagerProvider._update_from_vault" in str(changed.value)
    assert "AwsSecretsManagerProvider._get_client" in str(changed.value)
