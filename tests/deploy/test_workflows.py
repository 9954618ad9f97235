"""The GitHub workflows: valid against GitHub's published schema (offline), and the house rules for
CI and CD - pinned actions, deploy only after CI passed on main, OIDC for AWS, one deploy at a time."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.project import REPO_ROOT, WORKFLOWS, env_placeholders, workflow

WORKFLOW_FILES = sorted(p.name for p in WORKFLOWS.glob("*.yml"))
USES = re.compile(r"^\s*(?:-\s*)?uses:\s*(?P<ref>\S+)(?P<comment>.*)$", re.MULTILINE)
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"#\s*v\d+\.\d+\.\d+\s*$")


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps") or [])


def runs(job: dict[str, Any]) -> list[str]:
    return [step["run"].strip() for step in steps(job) if "run" in step]


def action(job: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [s for s in steps(job) if str(s.get("uses", "")).startswith(f"{name}@")]
    return found


def test_workflows_validate_against_the_published_schema() -> None:
    assert {"ci.yml", "deploy.yml", "deploy-environment.yml"} <= set(WORKFLOW_FILES)
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("check-jsonschema")),
            "--builtin-schema",
            "vendor.github-workflows",
            *(str(WORKFLOWS / name) for name in WORKFLOW_FILES),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", WORKFLOW_FILES)
def test_actions_are_pinned_to_a_commit_with_its_version(name: str) -> None:
    text = (WORKFLOWS / name).read_text(encoding="utf-8")
    for match in USES.finditer(text):
        ref = match["ref"].strip("'\"")
        if ref.startswith("./"):  # a workflow or action of this repository
            continue
        assert PINNED.match(ref), f"{name}: {ref} is not pinned to a full commit SHA"
        assert VERSION_COMMENT.search(match["comment"]), f"{name}: {ref} needs a '# vX.Y.Z' comment"


def test_ci_runs_lint_types_and_the_readme_test_command() -> None:
    ci = workflow("ci.yml")
    assert {"pull_request", "push"} <= set(ci["on"])
    [job] = ci["jobs"].values()
    assert action(job, "astral-sh/setup-uv")["with"]["enable-cache"] is True
    assert action(job, "actions/checkout")["with"]["fetch-depth"] == 0, "tests clone the checkout"
    commands = runs(job)
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    test_command = "uv run pytest"
    assert re.search(rf"^{test_command}\b", readme, re.MULTILINE), "the README's test command changed"
    expected = [
        "uv sync --frozen --compile-bytecode",
        "uv run ruff check .",
        "uv run ruff format --check .",
        "uv run mypy",
        "uv run lint-imports",
        "uv run python -m tools.deployments --check",
        test_command,
    ]
    assert [c for c in commands if c in expected] == expected, commands


def test_deploy_runs_only_after_ci_passed_on_a_push_to_main() -> None:
    deploy = workflow("deploy.yml")
    trigger = deploy["on"]["workflow_run"]
    assert trigger["workflows"] == [workflow("ci.yml")["name"]]
    assert trigger["types"] == ["completed"] and trigger["branches"] == ["main"]
    assert set(deploy["on"]) <= {"workflow_run", "workflow_dispatch"}
    jobs = deploy["jobs"]
    first = [job for job in jobs.values() if "needs" not in job]
    assert len(first) == 1, "one entry job; every other job needs it"
    condition = " ".join(first[0]["if"].split())
    for rule in (
        "github.event.workflow_run.conclusion == 'success'",
        "github.event.workflow_run.event == 'push'",
        "github.event.workflow_run.head_repository.full_name == github.repository",
    ):
        assert rule in condition, f"deploy.yml: the first job's `if` must check {rule}"
    commits = {job["with"]["commit"] for job in jobs.values()}
    assert commits == {
        "${{ github.event_name == 'workflow_dispatch' && inputs.commit"
        " || github.event.workflow_run.head_sha }}"
    }, "deploy exactly the commit CI tested (or the one chosen by hand)"
    assert jobs["production"]["needs"] == "staging", "production is promoted from staging"


def test_deploys_never_race() -> None:
    concurrency = workflow("deploy.yml")["concurrency"]
    assert concurrency["group"] and concurrency["cancel-in-progress"] is False


def test_deploy_job_uses_oidc_secrets_and_prefect_deploy_all() -> None:
    called = workflow("deploy-environment.yml")
    assert "workflow_call" in called["on"]
    for job in workflow("deploy.yml")["jobs"].values():
        assert job["uses"] == "./.github/workflows/deploy-environment.yml"
        assert job["permissions"]["id-token"] == "write", "the caller must grant OIDC to the called job"
    [job] = called["jobs"].values()
    assert job["permissions"]["id-token"] == "write"
    assert job["environment"] == "${{ inputs.environment }}"
    aws = action(job, "aws-actions/configure-aws-credentials")["with"]
    assert aws["role-to-assume"] and not {"aws-access-key-id", "aws-secret-access-key"} & set(aws)
    env = job["env"]
    assert env["PREFECT_API_URL"] == "${{ secrets.PREFECT_API_URL }}"
    assert env["PREFECT_API_KEY"] == "${{ secrets.PREFECT_API_KEY }}"
    assert env["DEPLOY_COMMIT"] == "${{ inputs.commit }}"
    assert env_placeholders() <= set(env), "every {{ $NAME }} in prefect.yaml is set by the deploy job"
    assert action(job, "actions/checkout")["with"]["ref"] == "${{ inputs.commit }}"
    assert "uv run prefect --no-prompt deploy --all" in runs(job)
    commands = runs(job)  # the variables prefect.yaml reads are checked first, naming any missing
    check = commands.index("uv run python -m tools.deployments check-env")
    assert check < commands.index("uv run prefect --no-prompt deploy --all")
    assert "uv sync --frozen --compile-bytecode" in runs(job)
    register = [r for r in runs(job) if "uv run python -m tools.alerts register" in r]
    assert register, "CD sets the workspace up: the notification block and every automation"
