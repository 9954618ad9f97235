"""Shared machinery: destinations, the pipeline runner, HTTP helpers, orchestration and secrets."""

from __future__ import annotations

from typing import Any


def _install_vault_provider() -> None:
    """Plug AWS Secrets Manager into dlt's config chain, once, for everything that imports ``utils``.

    dlt builds its vault provider through one factory whenever ``PROVIDERS__ENABLE_AWS_SECRETS=true``;
    pointing that factory at ``utils.vault_provider`` gives every pipeline the repository's layout with
    no code of its own. The provider module is imported only when dlt needs it, so that
    ``python -m utils.vault_provider`` does not load itself twice.
    """
    from dlt.common.configuration.container import Container
    from dlt.common.configuration.specs import config_providers_context
    from dlt.common.configuration.specs.pluggable_run_context import PluggableRunContext

    def factory(settings: Any) -> Any:
        from utils.vault_provider import build_provider

        return build_provider()

    config_providers_context._aws_secrets_provider = factory
    if PluggableRunContext in Container():  # dlt's provider list was built before utils was imported
        providers = Container()[PluggableRunContext].providers.providers
        if any(type(p).__name__ == "AwsSecretsManagerProvider" for p in providers):
            Container()[PluggableRunContext].reload_providers()


_install_vault_provider()
