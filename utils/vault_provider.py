"""AWS Secrets Manager in dlt's config chain: dlt's own provider, reading one JSON secret per config section.

Owner: data platform team (#data-platform). Every entry point calls :func:`register`. Design: docs/vault.md.

dlt documents ``_look_vault`` as the one method a vault provider implements; reading a section's
object at any depth also needs ``_load_fragments`` and ``_update_from_vault`` (overridden and called),
``_get_client`` (botocore's client, built from dlt's settings) and removing dlt's own provider from the
run context's list (dlt has no public call to take one out). :func:`check_dlt_hooks` checks each
before the provider is built, so a dlt release that changes them stops with :class:`DltChangedError`
instead of resolving secrets some other way (docs/internals.md).
"""

from __future__ import annotations

import inspect
import json
import logging
import re
import threading
from collections.abc import Iterator
from typing import Any, Final

import dlt
from dlt.common.configuration.container import Container
from dlt.common.configuration.exceptions import ConfigProviderException
from dlt.common.configuration.providers.aws_secrets import AwsSecretsManagerProvider
from dlt.common.configuration.providers.vault import SECRETS_TOML_KEY, normalize_key
from dlt.common.configuration.resolve import resolve_configuration
from dlt.common.configuration.specs import AwsCredentials
from dlt.common.configuration.specs.config_providers_context import AwsSecretsProviderConfiguration
from dlt.common.configuration.specs.pluggable_run_context import PluggableRunContext
from dlt.common.typing import AnyType

PROVIDER_NAME: Final = "AWS Secrets Manager"  # dlt's name for its AWS provider
LOOKED_UP_SECTIONS: Final = ("sources", "destination")
DLT_SETTINGS: Final = frozenset(  # dlt's own settings under a source or destination: never looked up
    ("runtime", "extract", "normalize", "load", "data_writer", "schema", "staging_config", "csv_format")
)
ADVICE: Final = {
    "AccessDeniedException": "Grant secretsmanager:GetSecretValue on the secrets under the prefix (and "
    "kms:Decrypt for a customer-managed key), or check which AWS identity runs this.",
    "DecryptionFailure": "Grant kms:Decrypt on the KMS key that encrypts the secret.",
    "ThrottlingException": "Secrets Manager throttled the request ({} attempts with backoff); retry later, "
    "or raise AWS_MAX_ATTEMPTS.",
}


DLT_HOOKS: Final[dict[str, tuple[str, ...]]] = {
    "_load_fragments": ("self", "key", "pipeline_name", "sections"),
    "_update_from_vault": ("self", "full_key", "key", "hint", "pipeline_name", "sections"),
    "_look_vault": ("self", "full_key", "hint"),
    "_get_client": ("self",),
}
"""The private methods of dlt's ``AwsSecretsManagerProvider`` used here, with their parameters."""


class DltChangedError(RuntimeError):
    """dlt's provider no longer has the private methods this module relies on (docs/internals.md)."""


def check_dlt_hooks() -> None:
    """Raise :class:`DltChangedError` naming every private dlt method that is gone or changed."""
    changed = []
    for name, parameters in DLT_HOOKS.items():
        method = getattr(AwsSecretsManagerProvider, name, None)
        found = tuple(inspect.signature(method).parameters) if callable(method) else None
        if found != parameters:
            changed.append(f"AwsSecretsManagerProvider.{name}{parameters} (found: {found})")
    if not isinstance(getattr(Container()[PluggableRunContext].providers, "providers", None), list):
        changed.append("PluggableRunContext.providers.providers (a list of providers)")
    if changed:
        raise DltChangedError(
            "this dlt release changed what utils/vault_provider.py relies on: "
            + "; ".join(changed)
            + ". Adapt the provider (docs/internals.md) before reading secrets from the vault."
        )


class VaultError(ConfigProviderException):
    """A secret could not be read. The message names the config key and secret, never a value."""


class SectionSecretsProvider(AwsSecretsManagerProvider):
    """dlt's AWS provider, reading section-relative JSON objects at any depth and failing loudly."""

    def __init__(self, credentials: AwsCredentials, secret_name_prefix: str, list_secrets: bool) -> None:
        super().__init__(credentials, False, True, False, secret_name_prefix)  # any key, fragments only
        self.list_secrets = list_secrets  # set after dlt's constructor, which would warn about it
        self._origins: dict[tuple[str, ...], str] = {}  # config path -> the secret its value came from
        self._lock = threading.RLock()  # threads share the provider: still one read per secret
        self._config_key = ""  # the key being resolved (under the lock), for errors

    def get_value(self, key: str, hint: type, pipeline_name: str | None, *sections: str) -> tuple[Any, str]:
        path = _vault_path(pipeline_name, sections)
        if not path:  # pipeline-scoped, top-level and dlt-settings keys are never in the vault
            return None, ".".join((*sections, key))
        with self._lock:
            self._config_key = ".".join((*path, key))
            value, _ = super().get_value(key, hint, None, *path)  # type: ignore[arg-type]
        return value, f"{self.secret_name_prefix}{'/'.join(path)} -> {key}"

    def get_value_location(self, key: str, pipeline_name: str | None, *sections: str) -> str:
        return self._origins.get((*_vault_path(pipeline_name, sections), key), "")

    def _load_fragments(self, key: str, pipeline_name: str | None, *path: str) -> None:
        """``sources/<name>`` first, then each deeper section: its keys win over a parent's copy."""
        for depth in range(2, len(path) + 1):
            name, parents = path[depth - 1], path[: depth - 1]
            self._update_from_vault("/".join(path[:depth]), name, AnyType, None, parents)  # type: ignore[arg-type]

    def set_fragment(self, key: str | None, fragment: str, pipeline_name: str | None, *sections: str) -> None:
        """Merge a section's object at the section (dlt would merge it from the document root)."""
        document, path = json.loads(fragment), (*sections, str(key))
        self._origins.update(dict.fromkeys(_leaves(document, path), self.secret_name_prefix + "/".join(path)))
        self.set_value(str(key), document, None, *sections)

    def _look_vault(self, full_key: str, hint: type) -> str | None:  # type: ignore[override]
        """The secret's JSON object as text, None if it does not exist, :class:`VaultError` otherwise."""
        if full_key == SECRETS_TOML_KEY:
            return None  # no whole-document secret in this layout
        from botocore.exceptions import BotoCoreError, ClientError

        secret = self.secret_name_prefix + full_key
        try:
            text = self.client().get_secret_value(SecretId=secret).get("SecretString")
            document = json.loads(text or "null")  # never echoed: it may be a secret itself
        except ClientError as error:
            code, message = error_info(error)
            if code == "ResourceNotFoundException":
                return None
            attempts = error.response["ResponseMetadata"].get("RetryAttempts", 0) + 1
            reason = f"{code} - {message}. " + ADVICE.get(code, "See the AWS error above.").format(attempts)
        except BotoCoreError as error:
            reason = f"{type(error).__name__} - {error}. Check the AWS credentials, region and endpoint."
        except json.JSONDecodeError as error:
            reason = f"not valid JSON (line {error.lineno}, column {error.colno}); store an object such as "
            reason += '{"api_key": "..."}.'
        else:
            if isinstance(document, dict):
                return str(text)
            kind = "binary data" if text is None else f"a JSON {type(document).__name__}"
            reason = f"holds {kind}, not an object of the section's keys."
        what = f"config key `{self._config_key}` from secret `{secret}`"
        raise VaultError(self.name, f"cannot read {what}: {reason}")

    def client(self) -> Any:
        """The Secrets Manager client, its payloads kept out of botocore's DEBUG logs."""
        client = self._get_client()  # botocore's modules, and so its loggers, are loaded by now
        for name in [n for n in logging.Logger.manager.loggerDict if n.startswith("botocore")]:
            logging.getLogger(name).addFilter(_hide_payloads)  # added once: Filterer skips a repeat
        return client


def _vault_path(pipeline_name: str | None, sections: tuple[str, ...]) -> tuple[str, ...]:
    path = tuple(normalize_key(s) for s in sections if s)
    vault = not pipeline_name and len(path) > 1 and path[0] in LOOKED_UP_SECTIONS
    return path if vault and not DLT_SETTINGS.intersection(path) else ()


def _leaves(node: dict[str, Any], path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    for key, value in node.items():
        yield from _leaves(value, (*path, key)) if isinstance(value, dict) else [(*path, key)]


def _hide_payloads(record: logging.LogRecord) -> bool:
    text = f"{record.msg} {record.args}"
    return record.levelno > logging.DEBUG or ("SecretString" not in text and "SecretBinary" not in text)


def error_info(error: Any) -> tuple[str, str]:
    """AWS's error code and message (some endpoints answer 403 with an XML body)."""
    code, message = error.response["Error"].get("Code", ""), error.response["Error"].get("Message", "")
    message = re.sub(r"(?s).*<Message>(.*)</Message>.*", r"\1", message)
    status = error.response["ResponseMetadata"].get("HTTPStatusCode")
    return ("AccessDeniedException" if status == 403 else code), message


def build_provider() -> SectionSecretsProvider:
    """A provider from ``[providers.aws_secrets]``, resolved with explicit sections (see docs/vault.md)."""
    check_dlt_hooks()
    sections = ("providers", "aws_secrets")
    settings = resolve_configuration(AwsSecretsProviderConfiguration(), sections=sections)
    credentials = resolve_configuration(AwsCredentials(), sections=sections)
    return SectionSecretsProvider(credentials, settings.secret_name_prefix, settings.list_secrets)


def register() -> None:
    """Swap the provider dlt's switch added for this one, last in the chain; a no-op when off or done."""
    providers = Container()[PluggableRunContext].providers
    if PROVIDER_NAME in providers and not isinstance(providers[PROVIDER_NAME], SectionSecretsProvider):
        providers.providers.remove(providers[PROVIDER_NAME])  # first, or resolving our settings asks it
        dlt.config.register_provider(build_provider())


def reload() -> None:
    """Rebuild dlt's provider list (switch, settings, TOML files) and the vault, as a new process would."""
    Container()[PluggableRunContext].reload_providers()
    register()


def active_provider() -> SectionSecretsProvider | None:
    """The vault provider in dlt's list, or None when the switch is off (or nothing registered it)."""
    return next((p for p in dlt.config.config_providers if isinstance(p, SectionSecretsProvider)), None)
