"""What ``prefect deploy`` needs from the environment, checked before anything is registered.

``prefect.yaml`` takes the work pool, the repository workers clone and the commit they check out from
``{{ $NAME }}`` placeholders. Prefect 3.8 leaves a placeholder whose variable is unset as it is and
fails at its work pool lookup with "work pool '{{ $PREFECT_WORK_POOL }}' does not exist", which names
none of the variables. So every deploy (CD, docs/deploying.md) runs this explicit check first::

    uv run python -m tools.deployments check-env && uv run prefect --no-prompt deploy --all

which names each missing variable and what to set it to, and exits 1.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final

REQUIRED: Final[dict[str, str]] = {
    "PREFECT_WORK_POOL": (
        "the work pool runs go to, e.g. `local` after `prefect work-pool create local --type process`"
        " (CD: the environment's pool)"
    ),
    "DEPLOY_REPOSITORY_URL": (
        "where workers clone the code from, e.g. `$(git remote get-url origin)`, or `$PWD` for a worker"
        " on this machine"
    ),
    "DEPLOY_COMMIT": (
        "the full commit SHA every deployment is pinned to, e.g. `$(git rev-parse HEAD)` (commit and,"
        " for a remote URL, push it first)"
    ),
}
"""Each variable ``prefect.yaml`` reads at deploy time, with what to set it to."""


class MissingDeployEnvError(RuntimeError):
    """One or more variables ``prefect.yaml`` needs are unset or empty."""


def missing(environ: Mapping[str, str] | None = None) -> list[str]:
    """The variables of :data:`REQUIRED` that are unset or blank in ``environ`` (default: the process)."""
    env = os.environ if environ is None else environ
    return [name for name in REQUIRED if not env.get(name, "").strip()]


def explain(names: list[str]) -> str:
    """A message naming each missing variable and what to set it to."""
    lines = [f"prefect deploy needs {len(names)} environment variable(s) that are not set:"]
    lines += [f"  {name}: {REQUIRED[name]}" for name in names]
    lines.append("Nothing was registered. Set them (see .envrc.example and docs/deploying.md) and re-run.")
    return "\n".join(lines)


def require_env(environ: Mapping[str, str] | None = None) -> None:
    """Raise :class:`MissingDeployEnvError` naming every missing variable, or return quietly."""
    names = missing(environ)
    if names:
        raise MissingDeployEnvError(explain(names))
