"""Scaffold a new pipeline from the templates beside this module (README, "Adding a pipeline").

    uv run python -m tools.scaffold NAME [--kind api|sql] [--write-disposition replace|append|merge]
                                         [--primary-key COL ...]

Renders ``templates/common/`` and ``templates/<kind>/`` with Jinja2 (``NAME`` in a path becomes the name)
and edits no existing file: ``prefect.yaml``, the freshness bounds and the README table derive from the
new declaration. Every check runs before anything is written, files are created exclusively, and the
generated Python is formatted with ruff, so it lints and its tests pass as generated.
"""

from __future__ import annotations

import argparse
import builtins
import importlib.machinery
import io
import keyword
import re
import subprocess
import sys
import tokenize
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final

import jinja2
import yaml

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
TEMPLATES: Final = Path(__file__).resolve().parent / "templates"
KINDS: Final = ("api", "sql")
DISPOSITIONS: Final = ("replace", "append", "merge")
NAME_PATTERN: Final = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
MAX_NAME_LENGTH: Final = 32
"""Long enough for any dataset name; short enough that generated lines stay within the line length."""
COLUMN_PATTERN: Final = re.compile(r"^[a-z_][a-z0-9_]*$")
RESERVED_SECTIONS: Final = frozenset(
    {"runtime", "sources", "destination", "destinations", "pipelines", "datasets", "load", "normalize"}
    | {"extract", "schema", "providers", "data_writer", "dbt_package_runner", "dbt_cloud", "workspace"}
)
"""dlt's top-level config sections: a pipeline of the same name would read them as its own."""
ENVIRONMENT: Final = jinja2.Environment(  # noqa: S701 - renders Python, YAML and Markdown, never HTML
    loader=jinja2.FileSystemLoader(TEMPLATES),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
)


class ScaffoldError(ValueError):
    """The request cannot be scaffolded; nothing was written."""


@dataclass(frozen=True)
class Spec:
    """What to scaffold."""

    name: str
    kind: str = "api"
    write_disposition: str = "merge"
    primary_key: tuple[str, ...] = ()

    def context(self) -> dict[str, Any]:
        """The templates' variables."""
        columns = self.primary_key or ("id",)  # the synthetic test records' key columns
        value = next(c for c in ("title", "label", "note") if c not in columns)  # a column tests change
        fields = ", ".join(f'"{c}": number' if c == "id" else f'"{c}": f"{c}-{{number}}"' for c in columns)
        camel = "".join(part.capitalize() for part in self.name.split("_"))
        return {
            "name": self.name,
            "kind": self.kind,
            "wd": self.write_disposition,
            "primary_key": self.primary_key,
            "key_phrase": f"on {', '.join(self.primary_key)}" if self.primary_key else "no primary key",
            "camel": camel,
            "title": self.name.replace("_", " ").capitalize(),
            "upper": self.name.upper(),
            "hyphen": self.name.replace("_", "-"),
            "record_columns": columns,
            "value": value,
            "columns": (*columns, value),
            "record": f'{{{fields}, "{value}": f"record {{number}}", **changes}}',
        }


def templates(kind: str) -> dict[str, Path]:
    """Template name -> the path it renders to, relative to the repository, with ``NAME`` in it."""
    return {
        path.relative_to(TEMPLATES).as_posix(): path.relative_to(TEMPLATES / folder).with_suffix("")
        for folder in ("common", kind)
        for path in sorted((TEMPLATES / folder).rglob("*.jinja"))
    }


def render(spec: Spec) -> dict[Path, str]:
    """Every new file of ``spec``, relative to the repository root, unformatted."""
    context = spec.context()
    return {
        Path(str(target).replace("NAME", spec.name)): ENVIRONMENT.get_template(name).render(context)
        for name, target in templates(spec.kind).items()
    }


def new_paths(name: str, root: Path) -> list[Path]:
    """Every path a pipeline ``name`` of any kind would create: none may exist yet."""
    targets = {Path(str(t).replace("NAME", name)) for kind in KINDS for t in templates(kind).values()}
    return [root / "sources" / name, *sorted(root / t for t in targets)]


def validate(spec: Spec, root: Path) -> list[str]:
    """Every reason ``spec`` cannot be scaffolded into ``root`` (empty when it can)."""
    errors = _name_errors(spec.name, root)
    if spec.kind not in KINDS:
        errors.append(f"--kind {spec.kind!r}: use one of {', '.join(KINDS)}")
    if spec.write_disposition not in DISPOSITIONS:
        errors.append(f"--write-disposition {spec.write_disposition!r}: use one of {', '.join(DISPOSITIONS)}")
    if spec.write_disposition == "merge" and not spec.primary_key:
        errors.append("--write-disposition merge needs --primary-key COL [COL ...]: it replaces rows by key")
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
            f"NAME {name!r}: use a lower snake case Python identifier (single underscores), e.g. sales_orders"
        ]
    if len(name) > MAX_NAME_LENGTH:
        return [f"NAME {name!r} is longer than {MAX_NAME_LENGTH} characters"]
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        return [f"NAME {name!r} is a Python keyword"]
    if name in sys.stdlib_module_names or _importable(name, root):
        return [f"NAME {name!r} is also a Python module: flows/{name}.py would shadow it; choose another"]
    if name in dir(builtins) or name in _template_identifiers():
        return [f"NAME {name!r} would shadow a name the generated code uses; choose another"]
    errors = [f"{path.relative_to(root)} already exists" for path in new_paths(name, root) if path.exists()]
    return errors + _used_elsewhere(name, root)


def _importable(name: str, root: Path) -> bool:
    """Whether ``import name`` finds the repository's own top level or an installed module (not folders
    inside the repository put on ``sys.path``, as Prefect does with ``flows/``)."""
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


def _used_elsewhere(name: str, root: Path) -> list[str]:
    """Another declaration's deployment, dataset or tag, or a config section, already named ``name``."""
    folder = root / "declarations"
    if not folder.is_dir():
        raise ScaffoldError(f"{folder} not found: run the scaffolder from the repository root")
    errors = []
    for path in sorted(folder.glob("*.yaml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        used = {d.get("name") for d in document.get("deployments") or []} | set(document.get("tags") or [])
        if {name, f"{name.replace('_', '-')}-daily"} & used or name == document.get("dataset"):
            errors.append(f"{path.relative_to(root)}: {document.get('name')!r} already uses {name!r}")
    if name in RESERVED_SECTIONS:
        errors.append(f"{name!r} is a top-level config section of dlt")
    for relative in (".dlt/config.toml", ".dlt/secrets.toml.example"):
        text = (root / relative).read_text(encoding="utf-8") if (root / relative).is_file() else ""
        document = tomllib.loads(text)
        if name in document:
            errors.append(f"{relative}: {name!r} is a top-level config section (dlt scopes a pipeline's own)")
        if name in document.get("sources", {}) or re.search(rf"^\s*#?\s*\[sources\.{name}[.\]]", text, re.M):
            errors.append(f"{relative}: [sources.{name}] already exists")
    return errors


@cache
def _template_identifiers() -> frozenset[str]:
    """Identifiers the templates use: a NAME equal to one of them would shadow it."""
    found: set[str] = set()
    for kind in KINDS:
        for path, text in render(Spec("zzprobe", kind, "merge", ("id",))).items():
            if path.suffix == ".py":
                tokens = tokenize.generate_tokens(io.StringIO(text).readline)
                found |= {t.string for t in tokens if t.type == tokenize.NAME and "zzprobe" not in t.string}
    return frozenset(found)


def plan(spec: Spec, root: Path = REPO_ROOT) -> dict[Path, str]:
    """Validate ``spec`` and render every new file, or raise :class:`ScaffoldError` listing every problem."""
    errors = validate(spec, root)
    if errors:
        raise ScaffoldError("\n".join(errors))
    files = {root / path: text for path, text in sorted(render(spec).items())}
    from declarations import Declaration  # the declaration must load as the catalogue loads it

    declaration = files[root / "declarations" / f"{spec.name}.yaml"]
    try:
        Declaration.model_validate(yaml.safe_load(declaration)).freshness_bound  # noqa: B018
    except ValueError as exc:
        raise ScaffoldError(f"the rendered declaration does not load: {exc}") from None
    _format(files, root)
    return files


def apply(files: dict[Path, str]) -> None:
    """Create every file exclusively (never overwrite, even in a race); on any failure, remove them."""
    written: list[Path] = []
    try:
        for path, text in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("x", encoding="utf-8") as handle:
                handle.write(text)
            written.append(path)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise


def _format(files: dict[Path, str], root: Path) -> None:
    """Sort imports and format the generated Python as ruff does in the repository, then lint it.

    Raises :class:`ScaffoldError` if it would not pass ``ruff check`` (say, a very long NAME or key).
    """
    # the new modules do not exist yet, so ruff is told which packages are the repository's own
    first_party = [p.name for p in sorted(root.iterdir()) if (p / "__init__.py").is_file()]
    isort = f"lint.isort.known-first-party = {first_party!r}".replace("'", '"')
    ruff = [sys.executable, "-m", "ruff"]
    for path in (p for p in files if p.suffix == ".py"):
        options = ["--config", isort, "--stdin-filename", str(path), "-"]
        for step in (["check", "--fix-only", "--select", "I"], ["format"], ["check"]):
            done = subprocess.run([*ruff, *step, *options], input=files[path], capture_output=True, text=True)
            if done.returncode != 0:
                raise ScaffoldError(
                    "the generated code would not pass ruff (a shorter NAME or fewer key columns may "
                    f"help):\n{(done.stdout + done.stderr).strip()[:2000]}"
                )
            if step != ["check"]:  # the first two print the changed code
                files[path] = done.stdout


def next_steps(spec: Spec) -> str:
    return ENVIRONMENT.get_template("next_steps.txt.jinja").render(spec.context()).rstrip()


def parse_args(argv: Sequence[str] | None) -> Spec:
    parser = argparse.ArgumentParser(prog="python -m tools.scaffold", description=__doc__.splitlines()[0])
    parser.add_argument("name", metavar="NAME", help="pipeline, dataset and module name, lower snake case")
    parser.add_argument("--kind", choices=KINDS, default="api", help="api (HTTP API) or sql (PostgreSQL)")
    parser.add_argument("--write-disposition", choices=DISPOSITIONS, default="merge")
    parser.add_argument("--primary-key", nargs="+", default=[], metavar="COL", help="merge needs one")
    args = parser.parse_args(argv)
    return Spec(args.name, args.kind, args.write_disposition, tuple(args.primary_key))


def main(argv: Sequence[str] | None = None, root: Path = REPO_ROOT) -> int:
    spec = parse_args(argv)
    try:
        files = plan(spec, root)
    except ScaffoldError as exc:
        print(f"error: nothing was written:\n  {str(exc).replace(chr(10), chr(10) + '  ')}", file=sys.stderr)
        return 2
    apply(files)
    print(f"Scaffolded the {spec.name} pipeline ({spec.kind}, {spec.write_disposition}):")
    for path in files:
        print(f"  created  {path.relative_to(root)}")
    print()
    print(next_steps(spec))
    return 0
