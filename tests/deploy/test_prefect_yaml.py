"""prefect.yaml against the code: every flow deployed, every entrypoint and parameter real, every
schedule valid. Parametrised over prefect.yaml and flows/, so a new flow or deployment is covered as
soon as it exists."""

from __future__ import annotations

import inspect
import zoneinfo
from typing import Any

import pytest
from prefect import Flow
from prefect.client.schemas.schedules import CronSchedule
from prefect.flows import load_flow_from_entrypoint

from tests.deploy.project import REPO_ROOT, deployment, deployments, discover_flows, env_placeholders

DEPLOYMENT_NAMES = [d["name"] for d in deployments()]
FLOWS = discover_flows()
CADENCES = {"hourly", "daily", "weekly", "monthly", "manual"}
"""Exactly one of these tags says how often a deployment runs; ``manual`` ones have no schedule."""


def test_prefect_yaml_has_deployments_with_unique_names() -> None:
    assert DEPLOYMENT_NAMES, "prefect.yaml declares no deployments"
    duplicates = {n for n in DEPLOYMENT_NAMES if DEPLOYMENT_NAMES.count(n) > 1}
    assert not duplicates, f"deployment names used twice: {sorted(duplicates)}"


def test_flows_are_discovered() -> None:
    assert "flows/currencies.py:currencies_flow" in {f.entrypoint for f in FLOWS}


@pytest.mark.parametrize("flow", FLOWS, ids=lambda f: f.entrypoint)
def test_every_flow_has_a_deployment(flow: Any) -> None:
    entrypoints = {d.get("entrypoint") for d in deployments()}
    assert flow.entrypoint in entrypoints, (
        f"{flow.entrypoint} has no deployment: add an entry to prefect.yaml (README, 'Adding a pipeline')"
    )


def test_code_comes_from_a_clone_at_the_deployed_commit() -> None:
    from tests.deploy.project import prefect_yaml

    config = prefect_yaml()
    assert config.get("build") is None and config.get("push") is None, "no image: build/push stay null"
    [step] = config["pull"]
    clone = step["prefect.deployments.steps.git_clone"]
    assert clone["repository"] == "{{ $DEPLOY_REPOSITORY_URL }}"
    assert clone["commit_sha"] == "{{ $DEPLOY_COMMIT }}"
    assert "branch" not in clone, "a branch would run whatever is newest, not what was deployed"
    assert env_placeholders() == {"DEPLOY_REPOSITORY_URL", "DEPLOY_COMMIT", "PREFECT_WORK_POOL"}


@pytest.mark.parametrize("name", DEPLOYMENT_NAMES)
def test_entrypoint_exists_and_loads_a_flow(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    entrypoint = deployment(name)["entrypoint"]
    path, _, attribute = entrypoint.partition(":")
    assert (REPO_ROOT / path).is_file(), f"{name}: {path} does not exist"
    monkeypatch.chdir(REPO_ROOT)  # prefect resolves entrypoints against the working directory
    flow: Flow[..., Any] = load_flow_from_entrypoint(entrypoint)
    assert isinstance(flow, Flow)
    defined = {f.entrypoint: f.flow.name for f in FLOWS}
    assert defined.get(entrypoint) == flow.name, f"{name}: {attribute} is not a @flow defined in {path}"


@pytest.mark.parametrize("name", DEPLOYMENT_NAMES)
def test_parameters_exist_on_the_flow_and_validate(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = deployment(name)
    assert isinstance(entry.get("parameters"), dict), f"{name}: declare parameters, even if {{}}"
    params: dict[str, Any] = entry["parameters"]
    monkeypatch.chdir(REPO_ROOT)
    flow: Flow[..., Any] = load_flow_from_entrypoint(entry["entrypoint"])
    signature = inspect.signature(flow.fn)
    unknown = set(params) - set(signature.parameters)
    assert not unknown, f"{name}: {sorted(unknown)} are not parameters of {entry['entrypoint']}"
    missing = {
        p.name
        for p in signature.parameters.values()
        if p.default is inspect.Parameter.empty and p.name not in params
    }
    assert not missing, f"{name}: required flow parameters {sorted(missing)} have no value"
    flow.validate_parameters(params)  # types, as Prefect checks them when a run starts


@pytest.mark.parametrize("name", DEPLOYMENT_NAMES)
def test_schedules_are_cron_with_an_explicit_time_zone(name: str) -> None:
    entry = deployment(name)
    schedules = entry.get("schedules")
    assert isinstance(schedules, list), f"{name}: declare schedules, [] for a manual deployment"
    for schedule in schedules:
        assert set(schedule) >= {"cron", "timezone"}, f"{name}: cron and timezone, both explicit"
        assert schedule["timezone"] in zoneinfo.available_timezones(), schedule["timezone"]
        CronSchedule(cron=schedule["cron"], timezone=schedule["timezone"])  # raises if it does not parse
    manual = "manual" in entry.get("tags", [])
    assert manual == (not schedules), f"{name}: tagged manual if and only if it has no schedule"


@pytest.mark.parametrize("name", DEPLOYMENT_NAMES)
def test_tags_name_dlt_the_pipeline_and_the_cadence(name: str) -> None:
    entry = deployment(name)
    tags = entry.get("tags") or []
    pipeline = entry["entrypoint"].partition(":")[0].removeprefix("flows/").removesuffix(".py")
    assert "dlt" in tags and pipeline in tags, f"{name}: tags {tags} need 'dlt' and '{pipeline}'"
    cadences = CADENCES.intersection(tags)
    assert len(cadences) == 1, f"{name}: exactly one cadence tag of {sorted(CADENCES)}, got {tags}"
    assert entry.get("description"), f"{name}: describe what it loads and when"


@pytest.mark.parametrize("name", DEPLOYMENT_NAMES)
def test_concurrency_limit_and_shared_work_pool(name: str) -> None:
    entry = deployment(name)
    limit = entry.get("concurrency_limit")
    if isinstance(limit, dict):
        assert limit.get("collision_strategy", "ENQUEUE") in {"ENQUEUE", "CANCEL_NEW"}
        limit = limit.get("limit")
    assert isinstance(limit, int) and limit >= 1, f"{name}: needs a concurrency limit"
    # `prefect deploy --all` ignores --version, so each entry pins its version to the deployed commit
    assert entry.get("version") == "{{ $DEPLOY_COMMIT }}", f"{name}: version must be the deployed commit"
    pool = entry.get("work_pool") or {}
    assert pool.get("name") == "{{ $PREFECT_WORK_POOL }}", f"{name}: use the shared work pool (*work_pool)"
    loggers = pool.get("job_variables", {}).get("env", {}).get("PREFECT_LOGGING_EXTRA_LOGGERS", "")
    assert "dlt" in loggers.split(","), f"{name}: dlt's logs belong in the run log (*work_pool)"
