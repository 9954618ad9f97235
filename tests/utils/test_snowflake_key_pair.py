"""Snowflake key-pair authentication: dlt's Snowflake credentials resolve a usable private key.

No Snowflake server is needed: the key dlt hands the Snowflake connector (``to_connector_params``) is
loaded back and must be the very key generated here, whichever form it was configured in.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from dlt.common.configuration.resolve import resolve_configuration
from dlt.destinations.impl.snowflake.configuration import SnowflakeCredentials

from tests.fixtures.vault import Vault

ACCOUNT = {"host": "acme-main", "database": "RAW", "username": "SVC_DLT", "warehouse": "LOADING"}


def resolved_credentials() -> SnowflakeCredentials:
    """Resolve ``[destination.snowflake.credentials]`` through dlt's providers, as a load would."""
    return resolve_configuration(SnowflakeCredentials(), sections=("destination", "snowflake"))


def connector_key(credentials: SnowflakeCredentials) -> Any:
    """The private key the Snowflake connector would receive (DER bytes), loaded back."""
    params = credentials.to_connector_params()
    assert "private_key_passphrase" not in params  # dlt decrypts; the passphrase never travels on
    assert params["user"] == ACCOUNT["username"] and params["account"] == ACCOUNT["host"]
    return serialization.load_der_private_key(params["private_key"], password=None)


def same_key(a: Any, b: Any) -> bool:
    return bool(a.public_key().public_numbers() == b.public_key().public_numbers())


def encrypted_pem(key: Any, passphrase: str) -> str:
    return str(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(passphrase.encode()),
        ).decode("ascii")
    )


@pytest.mark.parametrize("form", ["pem", "base64_pem", "base64_der", "encrypted_pem"])
def test_key_pair_from_the_vault(form: str, vault: Vault, rsa_key: Any, rsa_pem: str) -> None:
    document: dict[str, Any] = dict(ACCOUNT)
    if form == "pem":
        document["private_key"] = rsa_pem
    elif form == "base64_pem":
        document["private_key"] = base64.b64encode(rsa_pem.encode()).decode()
    elif form == "base64_der":
        der = rsa_key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        document["private_key"] = base64.b64encode(der).decode()
    else:
        document["private_key"] = encrypted_pem(rsa_key, "vault passphrase")
        document["private_key_passphrase"] = "vault passphrase"
    vault.put("dlt/destination/snowflake/credentials", document)

    credentials = resolved_credentials()

    assert same_key(connector_key(credentials), rsa_key)
    assert credentials.password is None and credentials.private_key_path is None


def test_key_file_with_passphrase_from_secrets_toml(vault: Vault, rsa_key: Any, tmp_path: Path) -> None:
    """The local form: a PEM file and its passphrase in secrets.toml; the vault is not needed."""
    key_file = tmp_path / "snowflake_svc_dlt.p8"
    key_file.write_text(encrypted_pem(rsa_key, "local passphrase"))
    lines = [f'{name} = "{value}"' for name, value in ACCOUNT.items()]
    lines += [f'private_key_path = "{key_file}"', 'private_key_passphrase = "local passphrase"']
    vault.write_secrets_toml("[destination.snowflake.credentials]\n" + "\n".join(lines) + "\n")

    assert same_key(connector_key(resolved_credentials()), rsa_key)


def test_wrong_passphrase_fails_without_revealing_it(vault: Vault, rsa_key: Any) -> None:
    document = {
        **ACCOUNT,
        "private_key": encrypted_pem(rsa_key, "right"),
        "private_key_passphrase": "wrong-x1",
    }
    vault.put("dlt/destination/snowflake/credentials", document)
    with pytest.raises(ValueError, match="Could not decode private key") as exc:
        resolved_credentials().to_connector_params()
    assert "wrong-x1" not in str(exc.value)
