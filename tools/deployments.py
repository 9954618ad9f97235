"""Render what derives from the pipeline declarations: ``prefect.yaml``, ``docs/lineage.md``, the
README's pipeline table and the dbt package's sources (``dbt/models/sources/``, see
``tools/dbt_sources.py``), from ``declarations/<name>.yaml`` and the templates beside this module.

    uv run python -m tools.deployments            # write the files
    uv run python -m tools.deployments --check    # 1, with a diff, when a committed file is stale (CI)
    uv run python -m tools.deployments check-env  # 1, naming them, when prefect deploy's variables are unset

The output depends on the declarations, the templates and the committed dlt schemas only, so re-running
it changes nothing.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

import yaml
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from declarations import Declaration, declarations
from tools import dbt_sources
from tools.automations import HEARTBEAT_SECONDS
from tools.deploy_env import MissingDeployEnvError, require_env

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
TEMPLATES: Final = Path(__file__).resolve().parent / "templates"
PREFECT_YAML: Final = REPO_ROOT / "prefect.yaml"
LINEAGE: Final = REPO_ROOT / "docs" / "lineage.md"
README: Final = REPO_ROOT / "README.md"
TABLE_START, TABLE_END = "<!-- pipelines:start -->", "<!-- pipelines:end -->"
CADENCES: Final = {"hourly", "daily", "weekly", "monthly", "manual"}
WIDTH: Final = 104
"""Where long descriptions fold in prefect.yaml (the repository's line length is 110)."""

FRESHNESS_CHECK: Final[dict[str, Any]] = {
    "name": "freshness-check",
    "entrypoint": "flows/freshness.py:freshness_flow",
    "description": (
        "Hourly check that every dataset's newest successful load is within its freshness bound"
        " (flows/freshness.py); fails, and so alerts, listing the stale datasets. Also judges each table's"
        " newest load (volume, schema) and alerts once per episode when one warns."
    ),
    "tags": ["dlt", "freshness", "hourly"],
    "parameters": {},
    "schedules": [{"cron": "15 * * * *", "timezone": "Europe/London"}],
}
"""The one deployment that is not a pipeline's: it checks every declared pipeline's bound."""

DESTINATIONS: Final = {"snowflake": "Snowflake", "filesystem": "S3 (filesystem)", "duckdb": "DuckDB"}


class StaleError(RuntimeError):
    """A generated file differs from what the declarations render."""


def deployments(found: dict[str, Declaration]) -> list[dict[str, Any]]:
    """Every ``prefect.yaml`` deployment: each pipeline's (by name, in declared order), then freshness."""
    entries: list[dict[str, Any]] = []
    for name in sorted(found):
        declaration = found[name]
        clash = sorted((CADENCES | {"dlt", name}) & set(declaration.tags))
        if clash:
            raise ValueError(f"{name}: tags {clash} are set by the generator; declare other tags")
        for d in declaration.deployments:
            schedules = [d.schedule.model_dump()] if d.schedule else []
            if (d.cadence == "manual") == bool(schedules):
                raise ValueError(f"{name}/{d.name}: cadence manual if and only if it has no schedule")
            entries.append(
                {
                    "name": d.name,
                    "entrypoint": f"flows/{name}.py:{d.flow}",
                    "description": d.description,
                    "tags": ["dlt", name, d.cadence, *declaration.tags],
                    "parameters": d.parameters,
                    "schedules": schedules,
                }
            )
    entries.append(FRESHNESS_CHECK)
    names = [e["name"] for e in entries]
    if duplicates := sorted({n for n in names if names.count(n) > 1}):
        raise ValueError(f"deployment names declared twice: {duplicates}")
    return entries


def folded(text: str) -> str:
    """A YAML scalar for ``text``: plain (quoted if it must be) when short, else folded (``>-``)."""
    if "\n" not in text and len(text) <= WIDTH - len("    description: "):
        return yaml.safe_dump(text, width=1_000_000, default_style=None).removesuffix("\n...\n").strip()
    if "\n" in text or "  " in text or text != text.strip():
        return json.dumps(text)  # folding would not keep it: a double-quoted (JSON) scalar does
    lines = textwrap.wrap(text, WIDTH - 6, break_long_words=False, break_on_hyphens=False)
    return ">-\n" + "\n".join(f"      {line}" for line in lines)


def duration(bound: timedelta) -> str:
    """``4 d 2 h``: a freshness bound as people read it."""
    days, rest = divmod(int(bound.total_seconds()), 86_400)
    hours, rest = divmod(rest, 3_600)
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else "", f"{rest // 60} min" if rest else ""]
    return " ".join(p for p in parts if p) or "0 min"


def schedule(declaration: Declaration) -> str:
    crons = [f"`{s.cron}` ({s.timezone})" for s in declaration.schedules]
    return "<br>".join(crons) or "manual"


@dataclass(frozen=True)
class Node:
    id: str
    label: str


def _node_id(prefix: str, text: str) -> str:
    return f"{prefix}_{re.sub(r'[^0-9A-Za-z]+', '_', text).strip('_')}"


def lineage_context(found: dict[str, Declaration]) -> dict[str, Any]:
    """Nodes and edges of the Mermaid graph: upstream -> pipeline -> raw table -> freshness check."""
    upstream: dict[str, Node] = {}
    tables: dict[str, Node] = {}
    rows: list[dict[str, Any]] = []
    for name in sorted(found):
        d = found[name]
        for uri in d.upstream:
            upstream.setdefault(uri, Node(_node_id("src", uri), uri))
        for table in d.tables:
            label = f"{d.destination}:{d.dataset}.{table}"
            tables.setdefault(label, Node(_node_id("tbl", label), label))
        rows.append(
            {
                "id": _node_id("pl", name),
                "name": name,
                "owner": d.owner,
                "kind": d.kind,
                "schedule": schedule(d),
                "freshness": duration(d.freshness_bound),
                "upstream": [upstream[uri].id for uri in d.upstream],
                "tables": [tables[f"{d.destination}:{d.dataset}.{t}"].id for t in d.tables],
            }
        )
    ids = [n.id for n in (*upstream.values(), *tables.values())] + [r["id"] for r in rows]
    if len(set(ids)) != len(ids):
        raise ValueError(f"two lineage nodes share an id: {sorted({i for i in ids if ids.count(i) > 1})}")
    return {
        "upstream": list(upstream.values()),
        "tables": list(tables.values()),
        "pipelines": rows,
        "raw_tables": raw_tables(found),
    }


def raw_tables(found: dict[str, Declaration]) -> list[dict[str, str]]:
    """Each declared root table: its dbt source, the key a load claims it under in production and the
    key prefect-dbt gives the relation a dbt model reads (the same, except behind Snowpipe)."""
    rows = []
    for name in sorted(found):
        d = found[name]
        source = dbt_sources.source_name(d)
        for table in d.tables:
            snowflake = (
                f"snowflake://RAW/{dbt_sources.snowflake_name(source)}/{dbt_sources.snowflake_name(table)}"
            )
            claimed = snowflake if d.destination == "snowflake" else f"<bucket_url>/{d.dataset}/{table}"
            rows.append(
                {
                    "pipeline": name,
                    "source": f"source('{source}', '{table}')",
                    "claimed": claimed,
                    "dbt": snowflake,
                }
            )
    return rows


def table_context(found: dict[str, Declaration]) -> dict[str, Any]:
    rows = []
    for name in sorted(found):
        d = found[name]
        page = REPO_ROOT / "docs" / f"{name}.md"
        tables = ", ".join(f"`{t}`" for t in d.tables)
        rows.append(
            {
                "link": f"[`{name}`](docs/{name}.md)" if page.is_file() else f"`{name}`",
                "description": d.description,
                "writes": f"{DESTINATIONS[d.destination]} `{d.dataset}`: {tables}",
                "schedule": schedule(d),
                "owner": d.owner,
            }
        )
    return {"pipelines": rows}


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - YAML and Markdown, never served as HTML
    )
    env.filters["folded"] = folded
    env.filters["json"] = json.dumps
    env.filters["mermaid"] = lambda text: text.replace('"', "#quot;")  # a quoted Mermaid label
    return env


def render_prefect_yaml(found: dict[str, Declaration]) -> str:
    entries = deployments(found)
    text = (
        environment()
        .get_template("prefect.yaml.j2")
        .render(deployments=entries, heartbeat_seconds=HEARTBEAT_SECONDS)
    )
    loaded = yaml.safe_load(text)["deployments"]  # what Prefect will read must be what was declared
    keys = ("name", "entrypoint", "description", "tags", "parameters", "schedules")
    if [{k: e[k] for k in keys} for e in loaded] != [{k: e[k] for k in keys} for e in entries]:
        raise ValueError("prefect.yaml does not read back as declared: fix the template")
    return text


def render_readme(current: str, found: dict[str, Declaration]) -> str:
    """``current`` with the pipeline table between its markers replaced."""
    start, end = current.find(TABLE_START), current.find(TABLE_END)
    if start < 0 or end < start:
        raise ValueError(f"README.md: the markers {TABLE_START} ... {TABLE_END} are missing")
    table = environment().get_template("pipelines_table.md.j2").render(table_context(found))
    return current[: start + len(TABLE_START)] + "\n" + table.strip("\n") + "\n" + current[end:]


def render() -> dict[Path, str]:
    """Every generated file with the text the declarations give it."""
    found = declarations()
    lineage = environment().get_template("lineage.md.j2").render(lineage_context(found))
    return {
        PREFECT_YAML: render_prefect_yaml(found),
        LINEAGE: lineage,
        README: render_readme(README.read_text(encoding="utf-8"), found),
        **dbt_sources.render(found),
    }


def stale() -> dict[Path, str]:
    """Each generated file that differs from its rendering, with a unified diff (empty: all current)."""
    diffs = {}
    for path, text in render().items():
        current = path.read_text(encoding="utf-8") if path.is_file() else ""
        if current != text:
            name = _shown(path)
            lines = difflib.unified_diff(
                current.splitlines(keepends=True), text.splitlines(keepends=True), name, f"{name} (generated)"
            )
            diffs[path] = "".join(lines)
    for path in dbt_sources.orphans(declarations()):
        diffs[path] = f"{_shown(path)}: no declaration renders it any more (delete it)\n"
    return diffs


def _shown(path: Path) -> str:
    """``path`` relative to the repository when it is inside it (tests render into a copy)."""
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.deployments", description=__doc__.splitlines()[0])
    parser.add_argument(
        "command",
        nargs="?",
        choices=("render", "check-env"),
        default="render",
        help="render (the default): write the generated files; check-env: exit 1 naming each variable"
        " `prefect deploy` needs that is unset (run it before every deploy)",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 with a diff if a file is stale")
    args = parser.parse_args(argv)
    if args.command == "check-env":
        try:
            require_env()
        except MissingDeployEnvError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print("PREFECT_WORK_POOL, DEPLOY_REPOSITORY_URL and DEPLOY_COMMIT are set")
        return 0
    if args.check:
        diffs = stale()
        for diff in diffs.values():
            sys.stdout.write(diff)
        if diffs:
            names = ", ".join(_shown(p) for p in diffs)
            print(f"\nstale: {names}; run `uv run python -m tools.deployments` and commit the result")
            return 1
        print("prefect.yaml, docs/lineage.md, the README's pipeline table and dbt/ sources are up to date")
        return 0
    for path, text in render().items():
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {_shown(path)}")
    for path in dbt_sources.orphans(declarations()):
        path.unlink()
        print(f"deleted {_shown(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
