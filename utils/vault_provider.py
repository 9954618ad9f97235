"""AWS Secrets Manager in dlt's config chain: one secret per config section.

Owner: data platform team (#data-platform).

dlt's own switch turns the vault on for every pipeline (CI/CD and production set it)::

    PROVIDERS__ENABLE_AWS_SECRETS=true

Locally, without it, nothing changes: ``.dlt/secrets.toml`` and the environment are all there is.

**Layout.** One secret per config section, named ``dlt/`` + the section path, holding a JSON object of
that section's keys::

    dlt/sources/products                     {"credentials": "postgresql://..."}
    dlt/sources/hubspot                      {"api_key": "..."}
    dlt/destination/snowflake/credentials    {"host": "...", "username": "...", "private_key": "..."}

A parent section may also hold a child as a nested object (``dlt/destination/snowflake`` ->
``{"credentials": {...}}``). Only sections under ``sources`` and ``destination`` are looked up. The prefix
is dlt's ``providers.aws_secrets.secret_name_prefix`` (``PROVIDERS__AWS_SECRETS__SECRET_NAME_PREFIX``,
default ``dlt/``); ``providers.aws_secrets.list_secrets=true`` lists the prefix once (needs
``secretsmanager:ListSecrets``) so that absent sections cost no request.

**Precedence.** Environment variables, then ``secrets.toml``, then ``config.toml``, then the vault: the
vault sits last in dlt's provider list and is only asked for keys nothing else provided.

**Requests.** Each secret is fetched at most once per process, "not found" included; region, endpoint
and credentials come from the standard AWS settings (``AWS_REGION``, ``AWS_ENDPOINT_URL_SECRETS_MANAGER``,
profiles, instance roles) or from ``[providers.aws_secrets.credentials]``.

**Errors** (access denied, a secret that is not a JSON object, throttling after botocore's retries, no
credentials) raise :class:`VaultError` naming the config key and the secret name, never a value. A
secret that does not exist is not an error: dlt's missing-config error names the keys and, for this
provider, the secret names it looked up.

**Registration** happens once, on ``import utils``: ``utils/__init__.py`` points dlt's vault factory
at :func:`build_provider`, so every pipeline, flow and source that uses ``utils`` gets it with no code of
its own, whenever dlt builds its provider list.

CLI::

    uv run python -m utils.vault_provider check [pipeline ...]   # where each config key resolves from
    uv run python -m utils.vault_provider push sources.hubspot   # upload a secrets.toml section
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import re
import sys
import threading
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Final

from dlt.common.configuration.container import Container
from dlt.common.configuration.exceptions import ConfigProviderException
from dlt.common.configuration.providers.aws_secrets import AwsSecretsManagerProvider
from dlt.common.configuration.providers.provider import EXPLICIT_VALUES_PROVIDER_NAME
from dlt.common.configuration.providers.vault import normalize_key
from dlt.common.configuration.resolve import resolve_configuration
from dlt.common.configuration.specs import (
    AwsCredentials,
    BaseConfiguration,
    CredentialsConfiguration,
    CredentialsWithDefault,
    known_sections,
)
from dlt.common.configuration.specs.base_configuration import is_secret_hint
from dlt.common.configuration.specs.config_providers_context import AwsSecretsProviderConfiguration
from dlt.common.configuration.specs.pluggable_run_context import PluggableRunContext
from dlt.common.configuration.utils import TraceLogContext
from dlt.common.typing import is_optional_type

PROVIDER_NAME: Final = "AWS Secrets Manager"
"""dlt's own name for its AWS provider: ours takes its place in the provider list."""
SWITCH_ENV: Final = "PROVIDERS__ENABLE_AWS_SECRETS"
LOOKED_UP_SECTIONS: Final = (known_sections.SOURCES, known_sections.DESTINATION)
DLT_SETTINGS_SECTIONS: Final = frozenset(
    {
        "runtime",
        known_sections.EXTRACT,
        known_sections.NORMALIZE,
        known_sections.LOAD,
        known_sections.DATA_WRITER,
        known_sections.SCHEMA,
        "staging_config",
        "csv_format",
    }
)
"""dlt's own settings nested under a source or destination: never secrets, so never looked up."""
THROTTLING_CODES: Final = frozenset(
    {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"}
)
REPO_ROOT: Final = Path(__file__).resolve().parent.parent


class VaultError(ConfigProviderException):
    """A secret could not be read. The message names the config key and secret, never a value."""

    def __init__(self, message: str) -> None:
        super().__init__(PROVIDER_NAME, message)


# secret name -> its JSON object, or None when the secret does not exist; shared by every provider
# instance in the process (dlt rebuilds its provider list on context switches)
_documents: dict[str, dict[str, Any] | None] = {}
_listed: dict[str, set[str]] = {}
_fetch_lock = threading.RLock()


def clear_cache() -> None:
    """Forget every fetched secret, so the next lookup asks AWS again (tests, rotation in a REPL)."""
    with _fetch_lock:
        _documents.clear()
        _listed.clear()


class SectionSecretsProvider(AwsSecretsManagerProvider):
    """dlt's AWS Secrets Manager provider, reading one JSON secret per config section."""

    def __init__(
        self,
        credentials: AwsCredentials,
        secret_name_prefix: str = "dlt/",  # noqa: S107 - a name prefix, not a password
        list_secrets: bool = False,
    ) -> None:
        # only_secrets / only_toml_fragments describe dlt's fragment layout; this layout looks up any
        # key of a section under sources/destination, each section at most once per process
        super().__init__(
            credentials,
            only_secrets=False,
            only_toml_fragments=False,
            list_secrets=False,
            secret_name_prefix=secret_name_prefix,
        )
        self.list_secrets = list_secrets

    # -- dlt's ConfigProvider interface ------------------------------------------------------------
    def get_value(
        self, key: str, hint: type, pipeline_name: str | None, *sections: str
    ) -> tuple[Any | None, str]:
        path = tuple(normalize_key(s) for s in sections if s)
        if (
            pipeline_name
            or not path
            or path[0] not in LOOKED_UP_SECTIONS
            or DLT_SETTINGS_SECTIONS.intersection(path[1:])
        ):
            # pipeline-scoped and top-level keys are never in the vault: env/secrets.toml always win
            return None, ".".join((*sections, key))
        secret = self.secret_name(path)
        found = self._find(path, key)
        return (found[0] if found else None), f"{secret} -> {key}"

    def get_value_location(self, key: str, pipeline_name: str | None, *sections: str) -> str:
        path = tuple(normalize_key(s) for s in sections if s)
        found = self._find(path, key) if path and not pipeline_name else None
        return found[1] if found else ""

    # -- layout ------------------------------------------------------------------------------------
    def secret_name(self, path: Sequence[str]) -> str:
        """The secret that holds the config section ``path`` (``("sources", "hubspot")``)."""
        return self.secret_name_prefix + "/".join(path)

    def _find(self, path: tuple[str, ...], key: str) -> tuple[Any, str] | None:
        """The value of ``key`` in section ``path`` and the secret it came from, or None.

        The section's own secret first, then each parent secret holding it as a nested object.
        """
        config_key = ".".join((*path, key))
        for depth in range(len(path), 0, -1):
            secret = self.secret_name(path[:depth])
            node: Any = self._document(secret, config_key)
            for part in path[depth:]:
                node = node.get(part) if isinstance(node, dict) else None
            if isinstance(node, dict) and node.get(key) is not None:
                return node[key], secret
        return None

    def _document(self, secret: str, config_key: str) -> dict[str, Any] | None:
        with _fetch_lock:
            if secret in _documents:
                return _documents[secret]
            if self.list_secrets and secret not in self._listed_names():
                _documents[secret] = None
                return None
            text = self._fetch(secret, config_key)
            document = None if text is None else _parse(text, secret, config_key)
            _documents[secret] = document
            return document

    def _get_client(self) -> Any:
        client = super()._get_client()
        _guard_botocore_logs()
        return client

    def _listed_names(self) -> set[str]:
        if self.secret_name_prefix not in _listed:
            try:
                keys = self._list_vault()
            except ConfigProviderException as exc:
                raise VaultError(str(getattr(exc, "msg", exc))) from None
            _listed[self.secret_name_prefix] = {self.secret_name_prefix + k for k in keys}
        return _listed[self.secret_name_prefix]

    def _fetch(self, secret: str, config_key: str) -> str | None:
        """The secret's text, None if it does not exist; :class:`VaultError` for anything else."""
        from botocore.exceptions import BotoCoreError, ClientError

        what = f"config key `{config_key}` from secret `{secret}`"
        try:
            response = self._get_client().get_secret_value(SecretId=secret)
        except ClientError as error:
            code, message = _error_info(error)
            if code == "ResourceNotFoundException":
                return None
            attempts = error.response.get("ResponseMetadata", {}).get("RetryAttempts", 0) + 1
            raise VaultError(f"cannot read {what}: {code} - {message}. {_advice(code, attempts)}") from None
        except BotoCoreError as error:
            raise VaultError(
                f"cannot read {what}: {type(error).__name__} - {error}. Check the AWS credentials, "
                "region and endpoint (AWS_REGION, AWS_ENDPOINT_URL_SECRETS_MANAGER)."
            ) from None
        if response.get("SecretString") is not None:
            return str(response["SecretString"])
        raise VaultError(f"cannot read {what}: it holds binary data; store a JSON object as text.")


class _DropSecretPayloads(logging.Filter):
    """Drops botocore's DEBUG records that carry a secret's payload (request params, response body)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.DEBUG:
            return True
        try:
            text = record.getMessage()
        except Exception:
            return False
        return "SecretString" not in text and "SecretBinary" not in text


_SECRET_PAYLOAD_FILTER: Final = _DropSecretPayloads()


def _guard_botocore_logs() -> None:
    """botocore logs request params and response bodies at DEBUG: keep secret values out of them."""
    for name in list(logging.Logger.manager.loggerDict):
        if name.startswith("botocore"):
            logger = logging.getLogger(name)
            if _SECRET_PAYLOAD_FILTER not in logger.filters:
                logger.addFilter(_SECRET_PAYLOAD_FILTER)


def _error_info(error: Any) -> tuple[str, str]:
    """AWS's error code and message; some endpoints answer 403 with an XML body instead of JSON."""
    code, message = AwsSecretsManagerProvider._client_error_info(error)
    if message.lstrip().startswith("<"):
        code = _xml_tag(message, "Code") or code
        message = _xml_tag(message, "Message") or "no message"
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if status == 403 and code in ("403", "AccessDenied"):
        code = "AccessDeniedException"
    return code, message


def _xml_tag(text: str, tag: str) -> str:
    match = re.search(rf"<{tag}>(.*?)</{tag}>", text, re.S)
    return match.group(1).strip() if match else ""


def _parse(text: str, secret: str, config_key: str) -> dict[str, Any]:
    """The secret's JSON object; never echoes the text, which may be a secret itself."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        position = f"line {exc.lineno}, column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise VaultError(
            f"secret `{secret}` (needed for config key `{config_key}`) is not valid JSON "
            f'({position}); store a JSON object of the section\'s keys, e.g. {{"api_key": "..."}}.'
        ) from None
    if not isinstance(document, dict):
        raise VaultError(
            f"secret `{secret}` (needed for config key `{config_key}`) holds a JSON "
            f"{type(document).__name__}, not an object of the section's keys."
        )
    return document


def _advice(code: str, attempts: int) -> str:
    if code in THROTTLING_CODES:
        return (
            f"Secrets Manager throttled the request ({attempts} attempts with backoff); retry later, or "
            "raise AWS_MAX_ATTEMPTS."
        )
    if code in ("AccessDeniedException", "UnrecognizedClientException"):
        return (
            "Grant secretsmanager:GetSecretValue on the secrets under the prefix (and kms:Decrypt for a "
            "customer-managed key), or check which AWS identity runs this."
        )
    if code == "DecryptionFailure":
        return "Grant kms:Decrypt on the KMS key that encrypts the secret."
    if code == "InvalidRequestException":
        return "The secret may be scheduled for deletion; restore it or remove the prefix's copy."
    return "See the AWS error above."


# -- registration ----------------------------------------------------------------------------------
def _settings() -> AwsSecretsProviderConfiguration:
    # explicit sections: correct even when dlt first builds its provider list inside a @dlt.source
    # call, whose injected section context would otherwise hide [providers.aws_secrets]
    return resolve_configuration(
        AwsSecretsProviderConfiguration(), sections=(known_sections.PROVIDERS, "aws_secrets")
    )


def build_provider(settings: AwsSecretsProviderConfiguration | None = None) -> SectionSecretsProvider:
    """A provider from dlt's ``[providers.aws_secrets]`` settings and AWS credentials."""
    settings = _settings() if settings is None else settings
    credentials = resolve_configuration(AwsCredentials(), sections=(known_sections.PROVIDERS, "aws_secrets"))
    return SectionSecretsProvider(
        credentials,
        secret_name_prefix=settings.secret_name_prefix,
        list_secrets=settings.list_secrets,
    )


def reload() -> None:
    """Rebuild dlt's provider list (re-reading the switch and settings) and forget fetched secrets."""
    clear_cache()
    Container()[PluggableRunContext].reload_providers()


def active_provider() -> SectionSecretsProvider | None:
    """The vault provider in dlt's list, or None when the switch is off."""
    for provider in Container()[PluggableRunContext].providers.providers:
        if isinstance(provider, SectionSecretsProvider):
            return provider
    return None


# -- check: which config keys a pipeline needs and where each resolves from ---------------------------
@dataclass(frozen=True)
class KeyStatus:
    """One config key of a pipeline: never its value."""

    key: str
    required: bool
    secret: bool
    origin: str  # env, secrets.toml, config.toml, vault, explicit, default, missing, unset
    location: str = ""  # the secret name for the vault, the file for TOML

    @property
    def missing(self) -> bool:
        return self.required and self.origin == "missing"

    @property
    def section(self) -> tuple[str, ...]:
        return tuple(self.key.split(".")[:-1])


@dataclass
class PipelineCheck:
    pipeline: str
    destination: str
    keys: list[KeyStatus]
    errors: list[str]

    @property
    def ok(self) -> bool:
        return not self.errors and not any(k.missing for k in self.keys)


def pipeline_modules() -> list[str]:
    """Names of the ``pipelines/*.py`` modules (``currencies``, ...)."""
    return sorted(p.stem for p in (REPO_ROOT / "pipelines").glob("*.py") if not p.stem.startswith("_"))


def source_factories(module: ModuleType) -> list[Any]:
    """The ``@dlt.source`` functions a pipeline module imports (its sources' config specs)."""
    from dlt.extract.decorators import DltSourceFactoryWrapper

    found = {id(v): v for v in vars(module).values() if isinstance(v, DltSourceFactoryWrapper)}
    return list(found.values())


def check_pipeline(name: str) -> PipelineCheck:
    """Resolve a pipeline's source and destination specs (without values) and report every key."""
    module = importlib.import_module(f"pipelines.{name}")
    errors: list[str] = []
    keys: list[KeyStatus] = []
    for factory in source_factories(module):
        ref = factory.ref
        source_sections = (known_sections.SOURCES, ref.section, ref.name)
        keys += _spec_keys(ref.SPEC(), source_sections, (known_sections.SOURCES, ref.section), errors)
    try:
        destination = module.create_pipeline().destination
    except Exception as exc:  # e.g. DLT__DESTINATION names an unsupported destination
        errors.append(f"create_pipeline(): {type(exc).__name__}: {exc}")
        destination = None
    if destination is not None:
        sections = (known_sections.DESTINATION, destination.destination_name)

        def resolve(config: BaseConfiguration) -> BaseConfiguration:
            return resolve_configuration(
                config, sections=sections, explicit_value=destination.config_params, accept_partial=True
            )

        keys += _spec_keys(
            destination.spec(), sections, sections, errors, resolve=resolve, only_credentials=True
        )
    return PipelineCheck(name, destination.destination_name if destination else "none", keys, errors)


def _spec_keys(
    config: BaseConfiguration,
    sections: tuple[str, ...],
    display: tuple[str, ...],
    errors: list[str],
    resolve: Any = None,
    only_credentials: bool = False,
) -> list[KeyStatus]:
    log = TraceLogContext()
    with Container().injectable_context(log):
        try:
            if resolve is not None:
                config = resolve(config)
            else:
                config = resolve_configuration(config, sections=sections, accept_partial=True)
        except Exception as exc:  # a validation error names fields, never values
            errors.append(f"{'.'.join(display)}: {type(exc).__name__}: {exc}")
    resolved = {(id(t.config), t.key): t for t in log.resolved_traces}
    return list(_walk(config, display, resolved, only_credentials))


def _walk(
    config: BaseConfiguration,
    path: tuple[str, ...],
    resolved: dict[tuple[int, str], Any],
    only_credentials: bool,
    in_credentials: bool = False,
) -> Iterator[KeyStatus]:
    fields = type(config).__dataclass_fields__
    for field, hint in config.get_resolvable_fields().items():
        value = getattr(config, field, None)
        trace = resolved.get((id(config), field))
        # credentials with a default (AWS, GCP) fall back to the platform's own chain - an IAM role on
        # workers - so none of their fields is required in config
        required = (
            not is_optional_type(hint)
            and fields[field].default is None
            and not isinstance(config, CredentialsWithDefault)
        )
        if isinstance(value, BaseConfiguration) and trace is None:
            nested = in_credentials or isinstance(value, CredentialsConfiguration)
            yield from _walk(value, (*path, field), resolved, only_credentials, nested)
            continue
        if field.startswith("_") or (only_credentials and not in_credentials and trace is None):
            continue  # private state; a destination's options and runtime-bound fields (dataset_name)
        if trace is None and not required:
            continue  # optional and not set anywhere: the default applies
        secret = in_credentials or is_secret_hint(hint) or isinstance(value, CredentialsConfiguration)
        if trace is not None:
            origin, location = _origin(trace.provider_name), trace.provider_location
            key = ".".join((*trace.sections, field)) if trace.sections else ".".join((*path, field))
        else:
            origin = "default" if value is not None else ("missing" if required else "unset")
            location, key = "", ".".join((*path, field))
        yield KeyStatus(key, required, bool(secret), origin, location if origin == "vault" else "")


def _origin(provider_name: str) -> str:
    return {
        "Environment Variables": "env",
        PROVIDER_NAME: "vault",
        EXPLICIT_VALUES_PROVIDER_NAME: "explicit",
    }.get(provider_name, provider_name)


def format_check(result: PipelineCheck) -> str:
    lines = [f"{result.pipeline} (destination: {result.destination})"]
    width = max((len(k.key) for k in result.keys), default=10)
    for k in result.keys:
        flags = ("required" if k.required else "optional") + (", secret" if k.secret else "")
        where = f"{k.origin} ({k.location})" if k.location else k.origin
        lines.append(f"  {k.key:<{width}}  {flags:<18}  {where}")
    lines += [f"  error: {e}" for e in result.errors]
    missing = [k.key for k in result.keys if k.missing]
    if missing:
        lines.append(f"  MISSING required: {', '.join(missing)}")
    return "\n".join(lines)


def check(names: Sequence[str]) -> int:
    """Print the report for ``names`` (every pipeline if empty); 1 if a required key is missing."""
    provider = active_provider()
    if provider is None:
        print(f"vault: off ({SWITCH_ENV} is not true)")
    else:
        print(f"vault: on ({', '.join(provider.locations)})")
    unknown = sorted(set(names) - set(pipeline_modules()))
    if unknown:
        print(f"unknown pipeline(s): {', '.join(unknown)}; known: {', '.join(pipeline_modules())}")
        return 2
    results = [check_pipeline(name) for name in names or pipeline_modules()]
    for result in results:
        print(format_check(result))
    return 0 if all(r.ok for r in results) else 1


# -- push: upload a secrets.toml section -------------------------------------------------------------
def push(section: str, secrets_file: Path, provider: SectionSecretsProvider | None = None) -> str:
    """Create or update the secret for ``section`` from ``secrets_file``; returns what it did (no values)."""
    document: Any = tomllib.loads(secrets_file.read_text())
    path = tuple(p for p in section.split(".") if p)
    for part in path:
        document = document.get(part) if isinstance(document, dict) else None
    if not isinstance(document, dict) or not document:
        raise SystemExit(f"no [{section}] table in {secrets_file}")
    if not path or path[0] not in LOOKED_UP_SECTIONS:
        raise SystemExit(f"only sections under {' or '.join(LOOKED_UP_SECTIONS)} are read from the vault")
    document = dict(document)
    if "private_key_path" in document:  # a key file becomes the key itself: workers have no such file
        key_file = Path(str(document.pop("private_key_path"))).expanduser()
        try:
            document["private_key"] = key_file.read_text("ascii")
        except (OSError, ValueError) as exc:
            raise SystemExit(f"cannot read private_key_path {key_file}: {type(exc).__name__}") from None
    provider = provider or active_provider() or build_provider()
    name = provider.secret_name(tuple(normalize_key(p) for p in path))
    from botocore.exceptions import BotoCoreError, ClientError

    client = provider._get_client()
    body = json.dumps(document)
    try:
        try:
            client.put_secret_value(SecretId=name, SecretString=body)
            action = "updated"
        except client.exceptions.ResourceNotFoundException:
            client.create_secret(Name=name, SecretString=body, Description=f"dlt config section {section}")
            action = "created"
    except ClientError as error:
        code, message = _error_info(error)
        raise VaultError(
            f"cannot write secret `{name}` for section `{section}`: {code} - {message}"
        ) from None
    except BotoCoreError as error:
        raise VaultError(f"cannot write secret `{name}` for section `{section}`: {error}") from None
    with _fetch_lock:
        _documents.pop(name, None)
    return f"{action} {name} with keys: {', '.join(sorted(document))}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m utils.vault_provider", description=__doc__.splitlines()[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    check_cmd = commands.add_parser("check", help="list each pipeline's config keys and where they resolve")
    check_cmd.add_argument("pipelines", nargs="*", help="pipeline names (default: every pipelines/*.py)")
    push_cmd = commands.add_parser("push", help="upload a secrets.toml section to the vault")
    push_cmd.add_argument("section", help="e.g. sources.hubspot or destination.snowflake.credentials")
    push_cmd.add_argument("--secrets-file", type=Path, default=Path(".dlt/secrets.toml"))
    args = parser.parse_args(argv)
    if args.command == "check":
        return check(args.pipelines)
    try:
        print(push(args.section, args.secrets_file))
    except VaultError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


__all__ = [
    "SectionSecretsProvider",
    "VaultError",
    "build_provider",
    "check",
    "check_pipeline",
    "clear_cache",
    "push",
    "reload",
]

if __name__ == "__main__":
    # run the imported module, the one dlt's factory uses, not this __main__ copy
    from utils import vault_provider

    sys.exit(vault_provider.main())
