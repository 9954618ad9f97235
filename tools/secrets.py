"""Secrets CLI: where each pipeline's config keys resolve from, upload a section, Snowflake preflight.

Values are never printed. Commands: docs/configuration.md; how it works: docs/vault.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from dlt.common.configuration.container import Container
from dlt.common.configuration.resolve import resolve_configuration
from dlt.common.configuration.specs import BaseConfiguration, CredentialsConfiguration, CredentialsWithDefault
from dlt.common.configuration.specs.base_configuration import is_secret_hint
from dlt.common.configuration.utils import TraceLogContext
from dlt.common.typing import is_optional_type
from dlt.extract.decorators import DltSourceFactoryWrapper

import declarations as catalogue
from pipelines import pipeline_module
from utils import vault_provider as vault

ORIGINS = {"Environment Variables": "env", vault.PROVIDER_NAME: "vault"}  # others: their file names


class KeyStatus(NamedTuple):
    """One config key of a pipeline and where it resolved from (env, secrets.toml, vault, missing...)."""

    key: str
    required: bool
    secret: bool
    origin: str
    location: str = ""  # the secret, for the vault

    @property
    def missing(self) -> bool:
        return self.origin == "missing"

    @property
    def section(self) -> tuple[str, ...]:
        return tuple(self.key.split(".")[:-1])


class PipelineCheck(NamedTuple):
    pipeline: str
    destination: str
    keys: list[KeyStatus]
    errors: list[str]

    @property
    def ok(self) -> bool:
        return not self.errors and not any(k.missing for k in self.keys)


def check_pipeline(name: str) -> PipelineCheck:
    """Resolve a pipeline's source and destination specs (no values kept) and report every key."""
    module, keys, errors = pipeline_module(name), list[KeyStatus](), list[str]()
    factories = {id(v): v for v in vars(module).values() if isinstance(v, DltSourceFactoryWrapper)}
    for ref in (factory.ref for factory in factories.values()):
        keys += _keys(ref.SPEC(), ("sources", ref.section, ref.name), None, errors)
    try:
        destination = module.create_pipeline().destination
    except Exception as exc:  # e.g. DLT__DESTINATION names an unsupported destination
        return PipelineCheck(name, "none", keys, [*errors, f"create_pipeline(): {type(exc).__name__}: {exc}"])
    sections = ("destination", destination.destination_name)
    keys += _keys(destination.spec(), sections, destination.config_params, errors, only_creds=True)
    return PipelineCheck(name, destination.destination_name, keys, errors)


def _keys(
    config: Any, sections: tuple[str, ...], explicit: Any, errors: list[str], only_creds: bool = False
) -> list[KeyStatus]:
    """Resolve ``config`` partially; dlt's trace log says where each value came from."""
    log = TraceLogContext()
    with Container().injectable_context(log):
        try:
            config = resolve_configuration(
                config, sections=sections, explicit_value=explicit, accept_partial=True
            )
        except Exception as exc:  # a validation error names fields, never values
            errors.append(f"{'.'.join(sections[:2])}: {type(exc).__name__}: {exc}")
    resolved = {(id(t.config), t.key): t for t in log.resolved_traces}

    def walk(config: Any, path: tuple[str, ...]) -> Iterator[KeyStatus]:
        in_creds = isinstance(config, CredentialsConfiguration)
        for field, hint in config.get_resolvable_fields().items():
            value, trace = getattr(config, field, None), resolved.get((id(config), field))
            secret = in_creds or is_secret_hint(hint)
            # credentials with a default (AWS, GCP) fall back to the platform's chain (a worker's IAM role)
            required = not is_optional_type(hint) and type(config).__dataclass_fields__[field].default is None
            required = required and not isinstance(config, CredentialsWithDefault)
            if trace is not None:
                origin = ORIGINS.get(trace.provider_name, trace.provider_name)
                where = trace.provider_location if origin == "vault" else ""
                yield KeyStatus(".".join((*(trace.sections or path), field)), required, secret, origin, where)
            elif isinstance(value, BaseConfiguration):
                yield from walk(value, (*path, field))
            elif required and (in_creds or not only_creds):  # set nowhere (a destination's options: unlisted)
                missing = "missing" if value is None else "default"
                yield KeyStatus(".".join((*path, field)), True, secret, missing)

    return list(walk(config, sections[:2]))


def check(names: Sequence[str]) -> int:
    """Print the report for ``names`` (default: all); 1 if a required key is missing, 2 if unknown."""
    provider = vault.active_provider()
    print(f"vault: on ({', '.join(provider.locations)})" if provider else "vault: off (switch not set)")
    known = catalogue.pipelines()  # every declared pipeline (declarations/)
    if unknown := sorted(set(names) - set(known)):
        print(f"unknown pipeline(s): {', '.join(unknown)}; known: {', '.join(known)}")
        return 2
    results = [check_pipeline(name) for name in names or known]
    print("\n".join(format_check(result) for result in results))
    return 0 if all(r.ok for r in results) else 1


def format_check(result: PipelineCheck) -> str:
    lines = [f"{result.pipeline} (destination: {result.destination})"]
    width = max((len(k.key) for k in result.keys), default=10)
    for k in result.keys:
        flags = ("required" if k.required else "optional") + (", secret" if k.secret else "")
        where = f"{k.origin} ({k.location})" if k.location else k.origin
        lines.append(f"  {k.key:<{width}}  {flags:<18}  {where}")
    lines += [f"  error: {e}" for e in result.errors]
    if missing := [k.key for k in result.keys if k.missing]:
        lines.append(f"  MISSING required: {', '.join(missing)}")
    return "\n".join(lines)


def push(section: str, secrets_file: Path) -> str:
    """Create or update the secret for ``section`` from ``secrets_file``; says what it did, no values."""
    path, document = section.split("."), tomllib.loads(secrets_file.read_text())
    for part in path:
        document = document.get(part) if isinstance(document, dict) else None  # type: ignore[assignment]
    if not isinstance(document, dict) or not document or path[0] not in vault.LOOKED_UP_SECTIONS:
        raise SystemExit(f"no [{section}] table under [sources] or [destination] in {secrets_file}")
    if "private_key_path" in document:  # a key file becomes the key itself: workers have no such file
        key_file = Path(str(document.pop("private_key_path"))).expanduser()
        try:
            document["private_key"] = key_file.read_text("ascii")
        except (OSError, ValueError) as exc:
            raise SystemExit(f"cannot read private_key_path {key_file}: {type(exc).__name__}") from None
    from botocore.exceptions import BotoCoreError, ClientError

    provider = vault.build_provider()
    name = provider.secret_name_prefix + provider.get_key_name(path[-1], *path[:-1])
    client, body = provider.client(), json.dumps(document)
    try:
        try:
            client.put_secret_value(SecretId=name, SecretString=body)
            action = "updated"
        except client.exceptions.ResourceNotFoundException:
            client.create_secret(Name=name, SecretString=body, Description=f"dlt config section {section}")
            action = "created"
    except (BotoCoreError, ClientError) as error:
        reason = " - ".join(vault.error_info(error)) if isinstance(error, ClientError) else str(error)
        raise SystemExit(f"cannot write secret `{name}` for section `{section}`: {reason}") from None
    vault.reload()  # this process reads the new value from now on
    return f"{action} {name} with keys: {', '.join(sorted(document))}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.secrets", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    check_cmd = commands.add_parser("check", help="list each pipeline's config keys and where they resolve")
    check_cmd.add_argument("pipelines", nargs="*", help="pipeline names (default: every declared pipeline)")
    push_cmd = commands.add_parser("push", help="upload a secrets.toml section to the vault")
    push_cmd.add_argument("section", help="e.g. sources.hubspot or destination.snowflake.credentials")
    push_cmd.add_argument("--secrets-file", type=Path, default=Path(".dlt/secrets.toml"))
    commands.add_parser("preflight", help="connect to Snowflake as a load would and check every privilege")
    args = parser.parse_args(argv)
    vault.register()
    if args.command == "preflight":
        from tools.snowflake_preflight import preflight

        return preflight()
    if args.command == "check":
        return check(args.pipelines)
    print(push(args.section, args.secrets_file))
    return 0


if __name__ == "__main__":
    sys.exit(main())
