"""What the deployment tests read: prefect.yaml, the flows under flows/, the GitHub workflows."""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from prefect import Flow

REPO_ROOT = Path(__file__).resolve().parents[2]
PREFECT_YAML = REPO_ROOT / "prefect.yaml"
WORKFLOWS = REPO_ROOT / ".github" / "workflows"
ENV_PLACEHOLDER = re.compile(r"\{\{\s*\$(\w+)\s*\}\}")


@cache
def prefect_yaml() -> dict[str, Any]:
    loaded = yaml.safe_load(PREFECT_YAML.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict), "prefect.yaml must be a mapping"
    return loaded


def deployments() -> list[dict[str, Any]]:
    return list(prefect_yaml().get("deployments") or [])


def deployment(name: str) -> dict[str, Any]:
    [found] = [d for d in deployments() if d["name"] == name]
    return found


def env_placeholders() -> set[str]:
    """Every ``{{ $NAME }}`` in prefect.yaml's values: environment variables `prefect deploy` needs."""
    return set(ENV_PLACEHOLDER.findall(yaml.safe_dump(prefect_yaml())))


@dataclass(frozen=True)
class FlowRef:
    entrypoint: str  # flows/<module>.py:<attribute>, as prefect.yaml spells it
    pipeline: str  # the module name, which is the pipeline (and dataset) name
    flow: Flow[Any, Any]


def discover_flows() -> list[FlowRef]:
    """Every ``@flow`` defined in a module under flows/ (flows a module merely imports are skipped)."""
    found = []
    for path in sorted((REPO_ROOT / "flows").glob("*.py")):
        if path.stem == "__init__":
            continue
        module = importlib.import_module(f"flows.{path.stem}")
        for attribute, value in sorted(vars(module).items()):
            if isinstance(value, Flow) and getattr(value.fn, "__module__", None) == module.__name__:
                found.append(FlowRef(f"flows/{path.name}:{attribute}", path.stem, value))
    return found


def workflow(name: str) -> dict[str, Any]:
    """A workflow file, with YAML 1.1's ``on: -> True`` turned back into the ``on`` key."""
    loaded = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    if True in loaded:
        loaded["on"] = loaded.pop(True)
    return loaded
