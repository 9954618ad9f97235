"""Scaffold a new pipeline in one command, following the house conventions (README, "Adding a pipeline").

    uv run python -m utils.scaffold NAME [--kind api|sql] [--write-disposition replace|append|merge]
                                         [--primary-key COL ...]

Creates ``sources/NAME/``, ``pipelines/NAME.py``, ``flows/NAME.py``, tests (a look-alike API under
``tests/fakes/`` for ``--kind api``, a table on the shared ``postgres`` fixture for ``--kind sql``, each
with its fixture under ``tests/fixtures/``), and adds the pipeline's entries to ``prefect.yaml``,
``pipelines/_catalogue.py``, ``.dlt/config.toml`` and ``.dlt/secrets.toml.example`` by inserting text, so
their comments, anchors and layout stay as they are. Every check runs before anything is written: a
bad name, an existing file or a bad option leaves the repository untouched. The generated code is
formatted with ruff and its tests pass as generated; then replace the placeholders (next steps).
"""

from __future__ import annotations

import argparse
import ast
import builtins
import importlib.machinery
import importlib.util
import io
import keyword
import re
import shutil
import subprocess
import sys
import tempfile
import tokenize
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
KINDS: Final = ("api", "sql")
DISPOSITIONS: Final = ("replace", "append", "merge")
NAME_PATTERN: Final = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
MAX_NAME_LENGTH: Final = 32
"""Long enough for any dataset name; short enough that generated lines stay within the line length."""
COLUMN_PATTERN: Final = re.compile(r"^[a-z_][a-z0-9_]*$")
CRON: Final = "0 6 * * *"
TIMEZONE: Final = "Europe/London"
FRESHNESS_HOURS: Final = 30
"""Daily at 06:00: one missed run plus its retries before the freshness check alerts."""


RESERVED_SECTIONS: Final = frozenset(
    {"runtime", "sources", "destination", "destinations", "pipelines", "datasets", "load", "normalize"}
    | {"extract", "schema", "providers", "data_writer", "dbt_package_runner", "dbt_cloud", "workspace"}
)
"""dlt's top-level config sections: a pipeline of the same name would read them as its own."""


class ScaffoldError(ValueError):
    """The request cannot be scaffolded; nothing was written."""


@dataclass(frozen=True)
class Spec:
    """What to scaffold."""

    name: str
    kind: str = "api"
    write_disposition: str = "merge"
    primary_key: tuple[str, ...] = ()

    @property
    def camel(self) -> str:
        return "".join(part.capitalize() for part in self.name.split("_"))

    @property
    def title(self) -> str:
        return self.name.replace("_", " ").capitalize()

    @property
    def deployment(self) -> str:
        return f"{self.name.replace('_', '-')}-daily"

    @property
    def record_columns(self) -> tuple[str, ...]:
        """The key columns of the synthetic test records (``id`` when the resource has no key)."""
        return self.primary_key or ("id",)

    @property
    def value_column(self) -> str:
        """A non-key column the tests change between runs."""
        return next(c for c in ("title", "label", "note") if c not in self.record_columns)

    @property
    def key_phrase(self) -> str:
        if not self.primary_key:
            return "no primary key"
        return f"on {', '.join(self.primary_key)}"


@dataclass
class Plan:
    """Every file to create and every file to change, computed before anything is written."""

    created: dict[Path, str] = field(default_factory=dict)
    changed: dict[Path, str] = field(default_factory=dict)


# -- validation --------------------------------------------------------------------------------------
def validate(spec: Spec, root: Path) -> list[str]:
    """Every reason ``spec`` cannot be scaffolded into ``root`` (empty when it can)."""
    errors = _name_errors(spec.name, root)
    if spec.kind not in KINDS:
        errors.append(f"--kind {spec.kind!r}: use one of {', '.join(KINDS)}")
    if spec.write_disposition not in DISPOSITIONS:
        errors.append(f"--write-disposition {spec.write_disposition!r}: use one of {', '.join(DISPOSITIONS)}")
    if spec.write_disposition == "merge" and not spec.primary_key:
        errors.append(
            "--write-disposition merge needs --primary-key COL [COL ...]: merge replaces rows by their key"
        )
    for column in spec.primary_key:
        if not COLUMN_PATTERN.match(column) or keyword.iskeyword(column):
            errors.append(f"--primary-key {column!r}: use a lower snake case column name")
        elif column.startswith("_dlt"):
            errors.append(f"--primary-key {column!r}: _dlt columns belong to dlt")
    if len(set(spec.primary_key)) != len(spec.primary_key):
        errors.append(f"--primary-key names a column twice: {' '.join(spec.primary_key)}")
    return errors


def _name_errors(name: str, root: Path) -> list[str]:
    if not NAME_PATTERN.match(name):
        return [
            f"NAME {name!r} is not a lower snake case Python identifier (letters, digits and single "
            "underscores, starting with a letter), e.g. sales_orders"
        ]
    if len(name) > MAX_NAME_LENGTH:
        return [f"NAME {name!r} is longer than {MAX_NAME_LENGTH} characters"]
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        return [f"NAME {name!r} is a Python keyword"]
    if name in sys.stdlib_module_names or _importable(name, root):
        return [
            f"NAME {name!r} is also a Python module or package: `python flows/{name}.py` puts flows/ "
            "first on the import path and would shadow it; choose another"
        ]
    if name in dir(builtins) or name in _template_identifiers():
        return [f"NAME {name!r} would shadow a name the generated code uses; choose another"]
    errors = [f"{path.relative_to(root)} already exists" for path in _new_paths(name, root) if path.exists()]
    errors += _used_in_shared_files(name, root)
    return errors


def _importable(name: str, root: Path) -> bool:
    """Whether ``import name`` would find something: the repository's own top level or an installed module.

    Folders inside the repository that something put on ``sys.path`` (Prefect adds ``flows/`` when it
    loads a flow by entrypoint) are skipped: their modules are not top-level modules.
    """
    if (root / name).exists() or (root / f"{name}.py").exists():
        return True
    repositories = {root.resolve(), REPO_ROOT}
    environment = Path(sys.prefix).resolve()

    def inside_a_repository(entry: str) -> bool:
        folder = Path(entry or ".").resolve()
        if folder.is_relative_to(environment):
            return False
        return any(folder != repo and folder.is_relative_to(repo) for repo in repositories)

    paths = [entry for entry in sys.path if not inside_a_repository(entry)]
    try:
        return importlib.machinery.PathFinder.find_spec(name, paths) is not None
    except (ImportError, ValueError):
        return True


def _used_in_shared_files(name: str, root: Path) -> list[str]:
    errors = []
    prefect_yaml = yaml.safe_load(_read(root / "prefect.yaml")) or {}
    for entry in prefect_yaml.get("deployments") or []:
        entrypoint = str(entry.get("entrypoint", ""))
        if (
            entrypoint.startswith(f"flows/{name}.py:")
            or name in (entry.get("tags") or [])
            or entry.get("name") == Spec(name).deployment
        ):
            errors.append(f"prefect.yaml: deployment {entry.get('name')!r} already uses {name!r}")
    if name in _freshness_keys(_read(root / "pipelines" / "_catalogue.py")):
        errors.append(f"pipelines/_catalogue.py: FRESHNESS_BOUNDS already has {name!r}")
    for toml_file in (".dlt/config.toml", ".dlt/secrets.toml.example"):
        text = _read(root / toml_file)
        document = tomllib.loads(text)
        if name in document or name in RESERVED_SECTIONS:
            errors.append(
                f"{toml_file}: {name!r} is a top-level config section (dlt scopes a pipeline's own "
                "settings under its name)"
            )
        if name in document.get("sources", {}) or re.search(
            rf"^\s*#?\s*\[sources\.{name}[.\]]", text, re.MULTILINE
        ):
            errors.append(f"{toml_file}: [sources.{name}] already exists")
    return errors


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScaffoldError(f"{path} not found: run the scaffolder from the repository root") from None


def _new_paths(name: str, root: Path) -> list[Path]:
    return [
        root / "sources" / name,
        root / "pipelines" / f"{name}.py",
        root / "flows" / f"{name}.py",
        root / "tests" / "fakes" / f"{name}.py",
        root / "tests" / "fixtures" / f"{name}.py",
        root / "tests" / "sources" / f"test_{name}.py",
        root / "tests" / "pipelines" / f"test_{name}.py",
        root / "tests" / "flows" / f"test_{name}.py",
    ]


def _template_identifiers() -> set[str]:
    """Identifiers the templates use: a NAME equal to one of them would shadow it."""
    found: set[str] = set()
    for kind in KINDS:
        probe = Spec("zzprobe", kind, "merge", ("id",))
        for path, text in _render_files(probe, Path(".")).items():
            if path.suffix == ".py":
                tokens = tokenize.generate_tokens(io.StringIO(text).readline)
                found |= {t.string for t in tokens if t.type == tokenize.NAME and "zzprobe" not in t.string}
    return found


def _freshness_keys(text: str) -> set[str]:
    for node in ast.walk(ast.parse(text)):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id == "FRESHNESS_BOUNDS"
            and isinstance(node.value, ast.Dict)
        ):
            return {
                k.value for k in node.value.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)
            }
    raise ScaffoldError("pipelines/_catalogue.py: FRESHNESS_BOUNDS: Final[...] = {...} not found")


# -- the plan ----------------------------------------------------------------------------------------
def plan(spec: Spec, root: Path = REPO_ROOT) -> Plan:
    """Validate ``spec`` and compute every change, or raise :class:`ScaffoldError` listing every problem."""
    errors = validate(spec, root)
    if errors:
        raise ScaffoldError("\n".join(errors))
    result = Plan(created={root / p: t for p, t in _render_files(spec, root).items()})
    result.changed[root / "prefect.yaml"] = insert_deployment(_read(root / "prefect.yaml"), spec)
    result.changed[root / "pipelines" / "_catalogue.py"] = insert_freshness_bound(
        _read(root / "pipelines" / "_catalogue.py"), spec
    )
    for relative, section in (
        (".dlt/config.toml", _config_section),
        (".dlt/secrets.toml.example", _secrets_section),
    ):
        result.changed[root / relative] = append_toml_section(
            _read(root / relative), section(spec), spec.name
        )
    _format(result, root)
    return result


def apply(result: Plan) -> None:
    """Write ``result``: new files exclusively; on any failure, undo what was written."""
    written: list[Path] = []
    originals = {path: path.read_text(encoding="utf-8") for path in result.changed}
    try:
        for path, text in result.created.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("x", encoding="utf-8") as handle:  # never overwrite, even in a race
                handle.write(text)
            written.append(path)
        for path, text in result.changed.items():
            path.write_text(text, encoding="utf-8")
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        for path, text in originals.items():
            path.write_text(text, encoding="utf-8")
        raise


def insert_deployment(text: str, spec: Spec) -> str:
    """``prefect.yaml`` with a deployment for ``spec`` appended to ``deployments:``, all else as it was."""
    for anchor in ("&work_pool", "&one_at_a_time"):
        if anchor not in text:
            raise ScaffoldError(f"prefect.yaml: anchor {anchor} not found; add the deployment by hand")
    lines = text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if re.match(r"^deployments:\s*(#.*)?$", line)]
    if len(starts) != 1:
        raise ScaffoldError("prefect.yaml: expected one top-level `deployments:` list")
    start = starts[0]
    end = next(
        (
            i
            for i in range(start + 1, len(lines))
            if lines[i].strip() and not lines[i][0].isspace() and not lines[i].startswith("- ")
        ),
        len(lines),
    )
    while end > start + 1 and (not lines[end - 1].strip() or lines[end - 1].lstrip().startswith("#")):
        end -= 1  # blank lines and comments before the next top-level key stay with that key
    items = [line for line in lines[start + 1 : end] if line.lstrip().startswith("- name:")]
    indent = (len(items[0]) - len(items[0].lstrip())) if items else 2
    pad = " " * indent
    entry = "".join(
        f"{pad}{line}\n" if line else "\n"
        for line in (
            f"- name: {spec.deployment}",
            f"  entrypoint: flows/{spec.name}.py:{spec.name}_flow",
            '  version: "{{ $DEPLOY_COMMIT }}"  # `deploy --all` ignores --version: pin it here',
            f"  description: Daily load of {spec.name} into RAW.{spec.name.upper()} "
            f"({spec.write_disposition}, {spec.key_phrase}).",
            f"  tags: [dlt, {spec.name}, daily]",
            "  parameters: {}",
            "  schedules:",
            f'    - cron: "{CRON}"',
            f"      timezone: {TIMEZONE}",
            "  concurrency_limit: *one_at_a_time",
            "  work_pool: *work_pool",
        )
    )
    before = "".join(lines[:end])
    if before and not before.endswith("\n"):
        before += "\n"
    new_text = before + entry + "".join(lines[end:])
    _check_deployment_added(text, new_text, spec)
    return new_text


def _check_deployment_added(old: str, new: str, spec: Spec) -> None:
    """The edited file parses, holds every old deployment unchanged and exactly one new one."""
    old_doc, new_doc = yaml.safe_load(old), yaml.safe_load(new)
    old_deployments = old_doc.get("deployments") or []
    expected = {**old_doc, "deployments": old_deployments}
    added = new_doc.get("deployments", [])[len(old_deployments) :]
    if (
        {**new_doc, "deployments": new_doc.get("deployments", [])[: len(old_deployments)]} != expected
        or len(added) != 1
        or added[0].get("entrypoint") != f"flows/{spec.name}.py:{spec.name}_flow"
        or added[0].get("work_pool") != old_doc["definitions"]["work_pool"]
    ):
        raise ScaffoldError("prefect.yaml: could not insert the deployment safely; add it by hand")


def insert_freshness_bound(text: str, spec: Spec) -> str:
    """``pipelines/_catalogue.py`` with a bound for ``spec`` as the last entry of ``FRESHNESS_BOUNDS``."""
    match = re.search(r"^FRESHNESS_BOUNDS\b.*=\s*\{\n(?P<body>.*?)^\}", text, re.MULTILINE | re.DOTALL)
    if not match:
        raise ScaffoldError(
            "pipelines/_catalogue.py: FRESHNESS_BOUNDS = {...} not found; add the bound by hand"
        )
    entry = (
        "    # daily at 06:00 London (scaffolded): one missed run plus retries\n"
        f'    "{spec.name}": dt.timedelta(hours={FRESHNESS_HOURS}),\n'
    )
    new_text = text[: match.end("body")] + entry + text[match.end("body") :]
    if _freshness_keys(new_text) != _freshness_keys(text) | {spec.name}:
        raise ScaffoldError("pipelines/_catalogue.py: could not insert the bound safely; add it by hand")
    return new_text


def append_toml_section(text: str, section: str, name: str) -> str:
    """``text`` with ``section`` appended after a blank line; the result must parse and hold the section."""
    new_text = text + ("" if text.endswith("\n") else "\n") + "\n" + section
    try:
        added = name in tomllib.loads(new_text).get("sources", {})
    except tomllib.TOMLDecodeError as exc:
        raise ScaffoldError(f"[sources.{name}] would not parse ({exc}); add it by hand") from None
    if not added:
        raise ScaffoldError(f"could not add [sources.{name}] safely; add it by hand")
    return new_text


def _config_section(spec: Spec) -> str:
    if spec.kind == "api":
        return (
            f"[sources.{spec.name}]\n"
            'base_url = "https://api.example.com/v1"   # placeholder: the provider\'s API root\n'
        )
    return (
        f"[sources.{spec.name}]\n"
        'schema = "public"\n'
        f'table = "{spec.name}"\n'
        "chunk_size = 100000             # rows per Arrow batch\n"
        "\n"
        "# The source yields Arrow tables; keep dlt's load id on every row (lineage to _dlt_loads).\n"
        f"[{spec.name}.normalize.parquet_normalizer]\n"
        "add_dlt_load_id = true\n"
    )


def _secrets_section(spec: Spec) -> str:
    rule = f"# --- {spec.name} " + "-" * max(3, 93 - len(spec.name))
    if spec.kind == "api":
        return (
            f"{rule}\n"
            "# Placeholder: the provider's API key (where to create it, which read scopes it needs).\n"
            f"[sources.{spec.name}]\n"
            f'api_key = "<{spec.name}-api-key>"\n'
        )
    return (
        f"{rule}\n"
        "# Placeholder: the source database, as a read-only user. The vault holds the same fields.\n"
        f"[sources.{spec.name}.credentials]\n"
        'drivername = "postgresql+psycopg2"\n'
        'host = "<db-host>"\n'
        'database = "<database>"\n'
        'username = "<read-only-user>"\n'
        'password = "<password>"\n'
    )


def _format(result: Plan, root: Path) -> None:
    """Sort imports and format the generated Python with the repository's ruff settings, then lint it.

    Works on a copy in a temporary folder, so nothing is written to the repository yet. Raises
    :class:`ScaffoldError` if the result would not pass ``ruff check`` (say, a very long NAME or key).
    """
    if importlib.util.find_spec("ruff") is None:
        print("warning: ruff is not installed: the generated code is not formatted", file=sys.stderr)
        return
    python = {path: text for path, text in result.created.items() if path.suffix == ".py"}
    # the new modules do not exist yet, so ruff is told which packages are the repository's own
    first_party = sorted(p.name for p in root.iterdir() if (p / "__init__.py").is_file())
    isort = ["--config", f"lint.isort.known-first-party = {first_party!r}".replace("'", '"')]
    with tempfile.TemporaryDirectory(prefix="scaffold-") as folder:
        copies = {path: Path(folder, path.relative_to(root)) for path in python}
        for path, copy in copies.items():
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_text(python[path], encoding="utf-8")
        if (root / "pyproject.toml").is_file():
            shutil.copy(root / "pyproject.toml", Path(folder, "pyproject.toml"))
        for command in (["check", "--fix", "--select", "I", *isort], ["format"], ["check", *isort]):
            done = subprocess.run(
                [sys.executable, "-m", "ruff", *command, "--quiet", "."],
                capture_output=True,
                text=True,
                cwd=folder,
                check=False,
            )
            if done.returncode != 0:
                raise ScaffoldError(
                    "the generated code would not pass ruff (a shorter NAME or fewer key columns may "
                    f"help):\n{(done.stdout + done.stderr).strip()[:2000]}"
                )
        for path, copy in copies.items():
            result.created[path] = copy.read_text(encoding="utf-8")


# -- templates ---------------------------------------------------------------------------------------
def _render_files(spec: Spec, root: Path) -> dict[Path, str]:
    name = spec.name
    kind = spec.kind
    files = {
        Path("sources", name, "__init__.py"): INIT[kind],
        Path("sources", name, "source.py"): SOURCE[kind],
        Path("pipelines", f"{name}.py"): PIPELINE,
        Path("flows", f"{name}.py"): FLOW,
        Path("tests", "fixtures", f"{name}.py"): FIXTURE[kind],
        Path("tests", "sources", f"test_{name}.py"): TEST_SOURCE[kind],
        Path("tests", "pipelines", f"test_{name}.py"): _with_fixture(
            TEST_PIPELINE + TEST_SECOND_RUN[spec.write_disposition], kind
        ),
        Path("tests", "flows", f"test_{name}.py"): _with_fixture(
            TEST_FLOW.replace("from typing import Any\n", "import time\nfrom typing import Any\n")
            + TEST_FLOW_RETRY
            if kind == "api"
            else TEST_FLOW.replace(", task_runs, without_retry_delay", ""),
            kind,
        ),
    }
    if kind == "api":
        files[Path("tests", "fakes", f"{name}.py")] = FAKE_API
    return {root / path: _substitute(text, spec) for path, text in files.items()}


def _substitute(text: str, spec: Spec) -> str:
    key = spec.primary_key
    record_fields = ", ".join(
        f'"{c}": number' if c == "id" else f'"{c}": f"{c}-{{number}}"' for c in spec.record_columns
    )
    ddl = [f'"{c}" {"bigint" if c == "id" else "text"} NOT NULL' for c in spec.record_columns]
    ddl.append(f'"{spec.value_column}" text NOT NULL')
    if key:
        ddl.append("PRIMARY KEY ({})".format(", ".join(f'"{c}"' for c in key)))
    replacements: dict[str, Any] = {
        "@pk_hint@": "primary_key=PRIMARY_KEY," if key else "# no primary_key: rows load as they come",
        "@pk_const@": f"PRIMARY_KEY: Final = {_tuple(key)}"
        if key
        else "PRIMARY_KEY: Final[tuple[str, ...]] = ()",
        "@pk_doc@": (
            {"merge": ": merge replaces rows by them", "replace": "", "append": ""}[spec.write_disposition]
            if key
            else " (none: every row loads as it comes)"
        ),
        "@key_phrase@": spec.key_phrase,
        "@wd@": spec.write_disposition,
        "@record_fields@": record_fields,
        "@columns@": _tuple((*spec.record_columns, spec.value_column)),
        "@column_list@": ", ".join((*spec.record_columns, spec.value_column)),
        "@value@": spec.value_column,
        "@sql_columns@": ",\n    ".join(ddl),
        "@Camel@": spec.camel,
        "@Title@": spec.title,
        "@NAME@": spec.name.upper(),
        "@hyphen@": spec.name.replace("_", "-"),
        "@name@": spec.name,
    }
    for token, value in replacements.items():
        text = text.replace(token, str(value))
    return text


def _tuple(columns: Sequence[str]) -> str:
    inner = ", ".join(f'"{c}"' for c in columns)
    return f"({inner},)" if len(columns) == 1 else f"({inner})"


INIT: Final = {
    "api": '''\
"""@Title@: <what it extracts, in one sentence> (placeholder: describe the data).

Owner: <team> (<#channel>) - placeholder.
API docs: <https://link-to-the-provider-api-reference> - placeholder.
Loaded with ``write_disposition="@wd@"`` (@key_phrase@).
"""

from sources.@name@.source import @name@, @name@_source

__all__ = ["@name@", "@name@_source"]
''',
    "sql": '''\
"""@Title@: <what it extracts, in one sentence> (placeholder: describe the data).

Owner: <team> (<#channel>) - placeholder.
Database docs: <link to the source database's schema documentation> - placeholder.
Read from PostgreSQL with dlt's ``sql_table``.
Loaded with ``write_disposition="@wd@"`` (@key_phrase@).
"""

from sources.@name@.source import @name@, @name@_source

__all__ = ["@name@", "@name@_source"]
''',
}

SOURCE: Final = {
    "api": '''\
"""dlt source for @name@ (the package docstring names its owner and API docs).

If the API pages, authenticates in a special way or needs client-side rate limiting, put that in
``client.py`` on dlt's ``RESTClient`` (see ``sources/hubspot/client.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

import dlt
from dlt.common.typing import TDataItem
from dlt.extract.resource import DltResource
from dlt.sources.helpers.rest_client import RESTClient

from utils.http import ApiError, api_client, get_json

WHAT: Final = "@name@ records"
RECORDS_PATH: Final = "@name@"
"""The endpoint that lists the records, relative to ``base_url`` (placeholder)."""
@pk_const@
"""The columns that identify a record@pk_doc@."""


@dlt.source(section="@name@", name="@name@")
def @name@_source(api_key: str = dlt.secrets.value, base_url: str = dlt.config.value) -> DltResource:
    """@Title@ records from the provider's API.

    Config, from ``[sources.@name@]``
    (or ``SOURCES__@NAME@__*`` environment variables):
        api_key: the provider's API key (secret), sent as ``Authorization: Bearer``.
        base_url: the API root.
    """
    return @name@(api_client(base_url, headers={"Authorization": f"Bearer {api_key}"}))


@dlt.resource(
    name="@name@",
    write_disposition="@wd@",
    @pk_hint@
)
def @name@(client: RESTClient) -> Iterator[TDataItem]:
    """One row per record; the whole response is checked before any row is yielded."""
    body = get_json(client, RECORDS_PATH, WHAT)
    if not isinstance(body, list):
        raise ApiError(f"{WHAT}: expected a JSON array, got {type(body).__name__}")
    for index, item in enumerate(body):
        if not isinstance(item, dict):
            raise ApiError(f"{WHAT}: item {index} is {type(item).__name__}, not an object")
        missing = [column for column in PRIMARY_KEY if item.get(column) is None]
        if missing:
            raise ApiError(f"{WHAT}: item {index} has no {', '.join(missing)}")
    yield body
''',
    "sql": '''\
"""dlt source for @name@: one PostgreSQL table, read with dlt's ``sql_table``.

Reflection is deferred to extraction, so building the source is cheap and an unreachable database or a
missing table fails the run's extract step. To read only changed rows, pass
``incremental=dlt.sources.incremental("updated_at")`` to ``sql_table``; for large tables,
``backend="adbc"`` (after ``import utils.adbc``) is many times faster (see ``sources/products/``).
"""

from __future__ import annotations

from typing import Final

import dlt
from dlt.common.configuration.specs import ConnectionStringCredentials
from dlt.extract.resource import DltResource
from dlt.sources.sql_database import sql_table

@pk_const@
"""The columns that identify a row@pk_doc@."""


@dlt.source(section="@name@", name="@name@")
def @name@_source(
    credentials: ConnectionStringCredentials = dlt.secrets.value,
    schema: str = "public",
    table: str = "@name@",
    chunk_size: int = 100_000,
) -> DltResource:
    """@Title@ rows from PostgreSQL.

    Config, from ``[sources.@name@]``
    (or ``SOURCES__@NAME@__*`` environment variables):
        credentials: a connection string (``postgresql+psycopg2://`` with user, password, host,
            port and database) or its fields (secret).
        schema, table: the table to read; it always lands in the ``@name@`` table.
        chunk_size: rows per Arrow batch.
    """
    return @name@(credentials, schema, table, chunk_size)


def @name@(credentials: ConnectionStringCredentials, schema: str, table: str, chunk_size: int) -> DltResource:
    """The table as Arrow batches (dlt's ``sql_table``, pyarrow backend)."""
    return sql_table(
        credentials=credentials,
        schema=schema,
        table=table,
        backend="pyarrow",
        chunk_size=chunk_size,
        defer_table_reflect=True,
        write_disposition="@wd@",
        @pk_hint@
    ).with_name("@name@")
''',
}

PIPELINE: Final = '''\
"""@Title@ pipeline -> Snowflake ``RAW.@NAME@``.

Loaded with ``write_disposition="@wd@"`` (@key_phrase@).

uv run python -m pipelines.@name@
On the local DuckDB warehouse instead:
DLT__DESTINATION=duckdb uv run python -m pipelines.@name@
"""

from __future__ import annotations

import argparse
import sys

import dlt

from sources.@name@ import @name@_source
from utils.destinations import get_destination
from utils.runner import RunReport, run_cli, run_pipeline

PIPELINE_NAME = "@name@"
DATASET_NAME = "@name@"


def create_pipeline() -> dlt.Pipeline:
    """The pipeline on its configured destination (Snowflake unless DLT__DESTINATION says)."""
    return dlt.pipeline(
        pipeline_name=PIPELINE_NAME,
        destination=get_destination("snowflake"),
        dataset_name=DATASET_NAME,
    )


def run() -> RunReport:
    """Load; settings come from ``[sources.@name@]`` (config and secrets)."""
    return run_pipeline(create_pipeline(), lambda: @name@_source())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.@name@", description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    return run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
'''

FLOW: Final = '''\
"""@Title@ flow: a daily load (@wd@, @key_phrase@).

uv run python flows/@name@.py
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from utils.orchestration import pipeline_flow, pipeline_task, run_load


@pipeline_task("load @name@", tags=["dlt", "@name@"])
def load_@name@() -> dict[str, Any]:
    from pipelines import @name@

    return run_load(@name@.run)


@pipeline_flow("@name@")
def @name@_flow() -> dict[str, Any]:
    """Load @name@ into the raw layer."""
    return load_@name@()


if __name__ == "__main__":
    @name@_flow()
'''

FAKE_API: Final = '''\
"""A look-alike of the @name@ API, served on 127.0.0.1.

Placeholder - make it follow the provider's published API: ``GET /v1/@name@``
with ``Authorization: Bearer <token>`` answers the records as a JSON array; a wrong or missing token
gets 401, an unknown path 404. Add the provider's paging, errors and rate limits as the source learns
them; ``FakeApi`` already records requests and injects faults (``fail``, ``drop``).
"""

from __future__ import annotations

from typing import Any

from tests.fakes.base import FakeApi, Request, Response

TOKEN = "test-@hyphen@-token"


def record(number: int, **changes: Any) -> dict[str, Any]:
    """A synthetic record: its key columns and one value column."""
    return {@record_fields@, "@value@": f"record {number}", **changes}


class Fake@Camel@(FakeApi):
    prefix = "/v1"

    def __init__(self, token: str = TOKEN) -> None:
        super().__init__()
        self.token = token
        self.records: list[dict[str, Any]] = []

    def replace_records(self, records: list[dict[str, Any]]) -> None:
        """From now on, answer exactly ``records``."""
        self.records = list(records)

    def handle(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return Response.json({"message": "invalid or missing API key"}, 401)
        if request.method == "GET" and request.path == f"{self.prefix}/@name@":
            return Response.json(self.records)
        return Response.json({"message": f"no route for {request.method} {request.path}"}, 404)
'''

FIXTURE: Final = {
    "api": '''\
"""The @name@ look-alike: one server per session, reset before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.@name@ import Fake@Camel@, record


@pytest.fixture(scope="session")
def @name@_api_server() -> Iterator[Fake@Camel@]:
    fake = Fake@Camel@().start()
    yield fake
    fake.stop()


@pytest.fixture
def @name@_api(@name@_api_server: Fake@Camel@, monkeypatch: pytest.MonkeyPatch) -> Fake@Camel@:
    """Three records, no faults, wired into the source (its URL and API key)."""
    @name@_api_server.reset()
    @name@_api_server.replace_records([record(number) for number in (1, 2, 3)])
    monkeypatch.setenv("SOURCES__@NAME@__BASE_URL", @name@_api_server.base_url)
    monkeypatch.setenv("SOURCES__@NAME@__API_KEY", @name@_api_server.token)
    return @name@_api_server
''',
    "sql": '''\
"""A PostgreSQL table for the @name@ source, on the shared ``postgres`` server."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa

TABLE = "@name@"
COLUMNS = @columns@
CREATE_TABLE = """
CREATE TABLE "@name@" (
    @sql_columns@
)
"""


def record(number: int, **changes: Any) -> dict[str, Any]:
    """A synthetic row: its key columns and one value column."""
    return {@record_fields@, "@value@": f"record {number}", **changes}


@dataclass
class @Camel@Database:
    """The test's database; ``records`` are the rows the table holds now."""

    uri: str
    records: list[dict[str, Any]] = field(default_factory=list)

    def replace_records(self, records: list[dict[str, Any]]) -> None:
        """Make the table hold exactly ``records``."""
        columns = ", ".join(f'"{c}"' for c in COLUMNS)
        values = ", ".join(f":{c}" for c in COLUMNS)
        engine = sa.create_engine(self.uri)
        with engine.begin() as connection:
            connection.execute(sa.text(f'DELETE FROM "{TABLE}"'))
            if records:
                connection.execute(sa.text(f'INSERT INTO "{TABLE}" ({columns}) VALUES ({values})'), records)
        engine.dispose()
        self.records = list(records)


@pytest.fixture
def @name@_db(postgres: str, monkeypatch: pytest.MonkeyPatch) -> @Camel@Database:
    """A table with three rows, wired into the @name@ source's credentials."""
    engine = sa.create_engine(postgres)
    with engine.begin() as connection:
        connection.execute(sa.text(CREATE_TABLE))
    engine.dispose()
    database = @Camel@Database(postgres)
    database.replace_records([record(number) for number in (1, 2, 3)])
    monkeypatch.setenv("SOURCES__@NAME@__CREDENTIALS", postgres)
    return database
''',
}

TEST_SOURCE: Final = {
    "api": '''\
"""The @name@ source against its look-alike API."""

from __future__ import annotations

import pytest
from dlt.extract.exceptions import ResourceExtractionError

from sources.@name@ import @name@_source
from tests.fakes.@name@ import Fake@Camel@


def test_rows_are_the_records_the_api_lists(@name@_api: Fake@Camel@) -> None:
    assert list(@name@_source()) == @name@_api.records
    [request] = @name@_api.requests
    assert request.path == "/v1/@name@"
    assert request.headers["authorization"] == f"Bearer {@name@_api.token}"


def test_transient_errors_are_retried(@name@_api: Fake@Camel@) -> None:
    @name@_api.fail(503, times=2)
    assert list(@name@_source()) == @name@_api.records
    assert len(@name@_api.requests) == 3


def test_a_rejected_key_fails_clearly_without_the_key(
    @name@_api: Fake@Camel@, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__@NAME@__API_KEY", "wrong-key-canary")
    with pytest.raises(ResourceExtractionError) as exc:
        list(@name@_source())
    assert "HTTP 401" in str(exc.value) and "check the credentials" in str(exc.value)
    assert "wrong-key-canary" not in str(exc.value)


def test_a_malformed_body_fails_clearly(@name@_api: Fake@Camel@) -> None:
    @name@_api.fail(200, body='{"unexpected": "object"}', headers={"Content-Type": "application/json"})
    with pytest.raises(ResourceExtractionError, match="expected a JSON array"):
        list(@name@_source())
''',
    "sql": '''\
"""The @name@ source against a real PostgreSQL table."""

from __future__ import annotations

from typing import Any

import pytest
from dlt.extract.exceptions import ResourceExtractionError

from sources.@name@ import @name@_source
from tests.fixtures.@name@ import @Camel@Database


def rows(**options: Any) -> list[dict[str, Any]]:
    """The source's rows (it yields Arrow tables)."""
    return [row for batch in @name@_source(**options) for row in batch.to_pylist()]


def test_rows_are_the_table_rows(@name@_db: @Camel@Database) -> None:
    assert rows() == @name@_db.records


def test_a_missing_table_fails_clearly(@name@_db: @Camel@Database) -> None:
    with pytest.raises(ResourceExtractionError, match="no_such_table"):
        rows(table="no_such_table")
''',
}

TEST_PIPELINE: Final = '''\
"""The @name@ pipeline end to end: its source -> dlt -> DuckDB, queried back."""

from __future__ import annotations

from typing import Any

import pytest

from pipelines import @name@
from tests.fixtures.warehouse import Warehouse

COLUMNS = @columns@
TABLE = "@name@.@name@"


def loaded(warehouse: Warehouse) -> list[tuple[Any, ...]]:
    return sorted(warehouse.query(f"select @column_list@ from {TABLE}"))


def expected(records: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(tuple(r[c] for c in COLUMNS) for r in records)


def test_cli_loads_into_the_local_warehouse(
    @fixture@: @Fixture@, warehouse: Warehouse, capsys: pytest.CaptureFixture[str]
) -> None:
    assert @name@.main([]) == 0
    out = capsys.readouterr().out
    assert "## @name@: succeeded" in out and f"| @name@ | {len(@fixture@.records)} |" in out
    assert loaded(warehouse) == expected(@fixture@.records)
    assert warehouse.scalar("select count(*) from @name@._dlt_loads where status = 0") == 1
'''

TEST_SECOND_RUN: Final = {
    "replace": """

def test_second_run_replaces_the_table(@fixture@: @Fixture@, warehouse: Warehouse) -> None:
    @name@.run()
    @fixture@.replace_records([record(2, @value@="changed"), record(4)])
    report = @name@.run()
    assert report.rows_by_table == {"@name@": 2}
    assert loaded(warehouse) == expected(@fixture@.records)
    assert warehouse.scalar(f"select count(distinct _dlt_load_id) from {TABLE}") == 1
""",
    "append": """

def test_second_run_appends(@fixture@: @Fixture@, warehouse: Warehouse) -> None:
    @name@.run()
    first = @fixture@.records
    @fixture@.replace_records([record(4), record(5)])
    @name@.run()
    assert loaded(warehouse) == expected(first + @fixture@.records)
    assert warehouse.scalar(f"select count(distinct _dlt_load_id) from {TABLE}") == 2
""",
    "merge": """

def test_second_run_merges_on_the_primary_key(@fixture@: @Fixture@, warehouse: Warehouse) -> None:
    @name@.run()
    @fixture@.replace_records([record(1), record(2, @value@="changed"), record(3), record(4)])
    @name@.run()
    assert loaded(warehouse) == expected(@fixture@.records)  # 2 changed in place, 4 added, none twice
    assert warehouse.scalar("select count(*) from @name@._dlt_loads where status = 0") == 2
""",
}

TEST_FLOW: Final = '''\
"""The @name@ flow under Prefect's test harness: retries, a load, its report."""

from __future__ import annotations

from typing import Any

import pytest
from prefect.states import State

import flows.@name@ as flow_module
from tests.fixtures.prefect import artifacts, task_runs, without_retry_delay
from tests.fixtures.warehouse import Warehouse
from utils.orchestration import RETRIES, RETRY_DELAYS, RETRY_JITTER

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_task_retry_policy_is_exponential_with_jitter() -> None:
    task = flow_module.load_@name@
    assert task.retries == RETRIES >= 3
    assert task.retry_delay_seconds == RETRY_DELAYS
    assert task.retry_jitter_factor == RETRY_JITTER > 0


def test_flow_loads_and_publishes_a_run_report(@fixture@: @Fixture@, warehouse: Warehouse) -> None:
    state: State[Any] = flow_module.@name@_flow(return_state=True)
    assert state.is_completed()
    result = state.result()
    assert result["rows_by_table"] == {"@name@": len(@fixture@.records)}
    assert warehouse.scalar("select count(*) from @name@.@name@") == result["total_rows"]
    [artifact] = artifacts(state.state_details.flow_run_id)
    assert artifact.key == "@hyphen@-run-report"
'''

TEST_FLOW_RETRY: Final = """

def test_retries_are_observed_on_the_task_run(
    @fixture@: @Fixture@, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    without_retry_delay(monkeypatch, flow_module, "load_@name@")
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "1")  # each task attempt makes one HTTP request
    @fixture@.fail(503, times=2)
    state: State[Any] = flow_module.@name@_flow(return_state=True)
    assert state.is_completed()
    deadline = time.monotonic() + 10  # Prefect records task run states asynchronously
    while True:
        [(task_run, states)] = task_runs(state.state_details.flow_run_id) or [(None, [])]
        if (states and states[-1].name == "Completed") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert task_run is not None and task_run.run_count == 3
    assert [s.name for s in states].count("Retrying") == 2
    assert len(@fixture@.requests) == 3
"""

_FIXTURE_TOKENS: Final = {
    "api": {"@fixture@": "@name@_api", "@Fixture@": "Fake@Camel@", "@imports@": "tests.fakes.@name@"},
    "sql": {"@fixture@": "@name@_db", "@Fixture@": "@Camel@Database", "@imports@": "tests.fixtures.@name@"},
}


def _with_fixture(template: str, kind: str) -> str:
    """Name the kind's fixture (and import its type and ``record``) in a test template."""
    tokens = _FIXTURE_TOKENS[kind]
    for token, value in tokens.items():
        template = template.replace(token, value)
    fixture_type = tokens["@Fixture@"]
    uses_record = "record(" in template
    names = ", ".join(n for n in (fixture_type, "record" if uses_record else "") if n)
    return template.replace(
        "from tests.fixtures.warehouse import Warehouse",
        f"from {tokens['@imports@']} import {names}\nfrom tests.fixtures.warehouse import Warehouse",
        1,
    )


# -- command line ------------------------------------------------------------------------------------
def next_steps(spec: Spec) -> str:
    n = spec.name
    where = "the real endpoint, paging and fields" if spec.kind == "api" else "the real schema, table and key"
    fake = (
        f"tests/fakes/{n}.py to follow the provider's\n     published API (paging, errors, rate limits)"
        if spec.kind == "api"
        else f"tests/fixtures/{n}.py to create the real table's\n     columns"
    )
    return f"""Next steps (README, "Adding a pipeline"):
  1. Source: fill in sources/{n}/__init__.py (what, owner, docs link) and sources/{n}/source.py
     ({where}; write_disposition={spec.write_disposition}, {spec.key_phrase}).
  2. Pipeline: pipelines/{n}.py - add run() options and CLI flags if the source has any.
  3. Flow: flows/{n}.py - pass the same options through the task.
  4. Deployment: check `{spec.deployment}` in prefect.yaml (daily {CRON} {TIMEZONE}, tags, description)
     and its freshness bound in pipelines/_catalogue.py; keep the two in step.
  5. Test on DuckDB: update {fake}, then
       uv run pytest tests/sources/test_{n}.py tests/pipelines/test_{n}.py tests/flows/test_{n}.py
       DLT__DESTINATION=duckdb uv run python -m pipelines.{n}
  6. Secrets, Snowflake and CD: put the real values of [sources.{n}] in .dlt/config.toml and
     .dlt/secrets.toml (and the vault: uv run python -m tools.secrets push sources.{n}),
     check with `uv run python -m tools.secrets check {n}`, add a row to README "Pipelines" and a
     page docs/{n}.md, then run ruff, mypy and the suite and open a pull request: CD deploys on merge."""


def parse_args(argv: Sequence[str] | None) -> Spec:
    parser = argparse.ArgumentParser(prog="python -m utils.scaffold", description=__doc__.splitlines()[0])
    parser.add_argument("name", metavar="NAME", help="pipeline, dataset and module name, lower snake case")
    parser.add_argument("--kind", choices=KINDS, default="api", help="api (HTTP API) or sql (PostgreSQL)")
    parser.add_argument("--write-disposition", choices=DISPOSITIONS, default="merge")
    parser.add_argument("--primary-key", nargs="+", default=[], metavar="COL", help="merge needs one")
    args = parser.parse_args(argv)
    return Spec(args.name, args.kind, args.write_disposition, tuple(args.primary_key))


def main(argv: Sequence[str] | None = None, root: Path = REPO_ROOT) -> int:
    spec = parse_args(argv)
    try:
        result = plan(spec, root)
    except ScaffoldError as exc:
        print(f"error: nothing was written:\n  {str(exc).replace(chr(10), chr(10) + '  ')}", file=sys.stderr)
        return 2
    apply(result)
    print(f"Scaffolded the {spec.name} pipeline ({spec.kind}, {spec.write_disposition}, {spec.key_phrase}):")
    for path in result.created:
        print(f"  created  {path.relative_to(root)}")
    for path in result.changed:
        print(f"  updated  {path.relative_to(root)}")
    print()
    print(next_steps(spec))
    return 0


if __name__ == "__main__":
    sys.exit(main())
