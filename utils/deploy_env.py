"""What ``prefect deploy`` needs from the environment, checked before anything is registered.

``prefect.yaml`` takes the work pool, the repository workers clone and the commit they check out from
``{{ $NAME }}`` placeholders. Prefect 3.8 leaves a placeholder whose variable is unset as it is, looks
the work pool up (failing with "work pool '{{ $PREFECT_WORK_POOL }}' does not exist") and only then runs
``build`` steps; the one thing it does earlier for every deployment is import the flow's entrypoint.
So the flows' shared module (``utils/orchestration.py``) calls :func:`check_when_deploying` on import:
inside a ``prefect deploy`` process with a variable missing it prints which ones, what to set them to,
and exits before the first deployment is registered. Anywhere else (workers, tests, CLIs) it does
nothing. ``python -m utils.deploy_env`` runs the same check on its own.
"""

from __future__ import annotations

import os
import sys
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

DEPLOY_MODULE: Final = "prefect.cli.deploy._core"
"""Imported by ``prefect deploy`` before it loads any entrypoint; never by workers or flow runs."""


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


def check_when_deploying() -> None:
    """Inside a ``prefect deploy`` process, exit with :func:`explain`'s message if a variable is missing.

    A ``prefect deploy`` process is one that has loaded Prefect's deploy command and whose command
    line has the word ``deploy``: never a worker, a flow run (``python -m prefect.engine``) or a test.

    It exits (``SystemExit``) rather than raising: Prefect turns an ordinary exception raised while it
    imports an entrypoint into a fallback that reads the flow without running its module, and would
    carry on to the work pool lookup.
    """
    if DEPLOY_MODULE not in sys.modules or "deploy" not in sys.argv[1:]:
        return
    try:
        require_env()
    except MissingDeployEnvError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None


if __name__ == "__main__":
    try:
        require_env()
    except MissingDeployEnvError as exc:
        sys.exit(f"error: {exc}")
    print("PREFECT_WORK_POOL, DEPLOY_REPOSITORY_URL and DEPLOY_COMMIT are set")
