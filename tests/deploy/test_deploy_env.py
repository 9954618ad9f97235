"""The deploy check (`python -m tools.deployments check-env`, run before `prefect deploy --all`) names
every variable `prefect.yaml` reads that is unset, and passes when all are set.

With the variables set, the deploy and a worker's run are covered by ``test_deploy_e2e.py``; that CD
runs the check before the deploy, by ``test_workflows.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.deploy.project import REPO_ROOT, env_placeholders
from tools.deploy_env import REQUIRED, MissingDeployEnvError, missing, require_env


def check_env(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in REQUIRED} | env
    return subprocess.run(
        [sys.executable, "-m", "tools.deployments", "check-env"],
        cwd=REPO_ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_required_variables_are_the_ones_prefect_yaml_reads() -> None:
    assert set(REQUIRED) == env_placeholders()


def test_missing_names_unset_and_blank_variables_only() -> None:
    assert missing({"PREFECT_WORK_POOL": "p", "DEPLOY_COMMIT": "  "}) == [
        "DEPLOY_REPOSITORY_URL",
        "DEPLOY_COMMIT",
    ]
    require_env(dict.fromkeys(REQUIRED, "x"))
    with pytest.raises(MissingDeployEnvError, match="PREFECT_WORK_POOL: the work pool"):
        require_env({})


def test_check_env_with_nothing_set_names_all_three() -> None:
    result = check_env()
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 1, output
    for name, what in REQUIRED.items():
        assert f"{name}: {what}" in output, output


def test_check_env_with_only_the_pool_set_names_the_other_two() -> None:
    result = check_env(PREFECT_WORK_POOL="local")
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 1, output
    assert "DEPLOY_REPOSITORY_URL:" in output and "DEPLOY_COMMIT:" in output, output
    assert "PREFECT_WORK_POOL:" not in output, output


def test_check_env_passes_when_all_are_set() -> None:
    result = check_env(**dict.fromkeys(REQUIRED, "x"))
    assert result.returncode == 0, result.stderr
