"""The scaffolder, in copies of the repository (``git ls-files``, so working changes are included).

One copy gets a pipeline of every kind and write disposition: the files it gained are exactly the new
pipelines' own (nothing else changed), and their generated tests, ruff, mypy and the repository's
consistency tests then run there in one go. Requests the scaffolder must refuse run against a copy that
must stay byte for byte the same.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from declarations import Declaration
from tools import scaffold

REPO = Path(__file__).resolve().parents[2]
VARIANTS: dict[str, list[str]] = {
    # name -> options; every kind with every disposition, with and without keys, a composite and a
    # text key, and a name of the longest length allowed (generated lines must still pass ruff)
    "api_replaced": ["--write-disposition", "replace"],
    "api_appended_with_a_long_name_32": ["--write-disposition", "append", "--primary-key", "event_id"],
    "api_merged": ["--primary-key", "id"],
    "sql_replaced": ["--kind", "sql", "--write-disposition", "replace", "--primary-key", "id"],
    "sql_appended": ["--kind", "sql", "--write-disposition", "append"],
    "sql_merged": ["--kind", "sql", "--primary-key", "sku", "currency"],
}
PYTHON = sys.executable  # the repository's .venv: the copies share it


def copy_repository(target: Path) -> Path:
    """Copy the files git knows about (tracked, and untracked but not ignored) to ``target``."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for relative in filter(None, listed.split("\0")):
        source = REPO / relative
        if source.is_file():  # a file deleted in the working tree is still listed as cached
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / relative)
    return target


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and ".mypy_cache" not in path.parts
    }


def clean_env() -> dict[str, str]:
    """This process's environment without what this test session set up (the copy's conftest does)."""
    prefixes = ("DLT", "PREFECT_", "SOURCES__", "DESTINATION__", "RUNTIME__", "PROVIDERS__", "AWS_")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


def run(command: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=timeout, check=False
    )


def kind_of(name: str) -> str:
    return "sql" if "sql" in VARIANTS[name] else "api"


def own_files(name: str, kind: str) -> set[str]:
    """What adding pipeline ``name`` may create, written out here rather than taken from the scaffolder."""
    return {
        f"sources/{name}/__init__.py",
        f"sources/{name}/source.py",
        f"pipelines/{name}.py",
        f"declarations/{name}.yaml",
        f"flows/{name}.py",
        f"tests/fixtures/{name}.py",
        f"tests/sources/test_{name}.py",
        f"tests/pipelines/test_{name}.py",
        f"tests/flows/test_{name}.py",
        f"docs/{name}.md",
    } | ({f"tests/fakes/{name}.py"} if kind == "api" else set())


# -- every kind and disposition in one copy -----------------------------------------------------------
@dataclass
class Scaffolded:
    root: Path
    before: dict[str, str]
    after: dict[str, str]


@pytest.fixture(scope="module")
def scaffolded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scaffolded]:
    root = copy_repository(tmp_path_factory.mktemp("scaffolded") / "repo")
    if (REPO / ".mypy_cache").is_dir():  # a warm cache halves mypy's time; mypy re-checks what changed
        shutil.copytree(REPO / ".mypy_cache", root / ".mypy_cache")
    before = snapshot(root)
    for name, options in VARIANTS.items():
        assert scaffold.main([name, *options], root=root) == 0, name
    yield Scaffolded(root, before, snapshot(root))


def test_adding_a_pipeline_touches_only_its_own_files(scaffolded: Scaffolded) -> None:
    before, after = scaffolded.before, scaffolded.after
    changed = {path for path in before if after.get(path) != before[path]}
    assert not changed, f"the scaffolder changed or removed existing files: {sorted(changed)}"
    added = set(after) - set(before)
    assert added == set().union(*(own_files(name, kind_of(name)) for name in VARIANTS))


def test_scaffolded_files_follow_the_layout(scaffolded: Scaffolded) -> None:
    root = scaffolded.root
    for name, options in VARIANTS.items():
        kind = kind_of(name)
        source = (root / "sources" / name / "source.py").read_text()
        assert f'@dlt.source(section="{name}", name="{name}")' in source
        disposition = (
            options[options.index("--write-disposition") + 1] if "--write-disposition" in options else "merge"
        )
        assert f'write_disposition="{disposition}"' in source
        assert ("sql_table(" in source) == (kind == "sql")
        assert ("api_client(" in source) == (kind == "api")
        if kind == "api":
            assert "(FakeApi):" in (root / "tests" / "fakes" / f"{name}.py").read_text()
        else:
            assert "postgres: str" in (root / "tests" / "fixtures" / f"{name}.py").read_text()
        assert f"def {name}_flow(" in (root / "flows" / f"{name}.py").read_text()
        assert (root / "docs" / f"{name}.md").read_text().startswith(f"# {name}\n")


def test_the_declaration_loads_as_the_catalogue_loads_it(scaffolded: Scaffolded) -> None:
    for name in VARIANTS:
        text = (scaffolded.root / "declarations" / f"{name}.yaml").read_text()
        declaration = Declaration.model_validate(yaml.safe_load(text))
        assert declaration.name == declaration.dataset == name and declaration.tables == [name]
        assert declaration.kind == ("database" if kind_of(name) == "sql" else "api")
        [deployment] = declaration.deployments
        assert (deployment.name, deployment.flow) == (f"{name.replace('_', '-')}-daily", f"{name}_flow")
        assert deployment.schedule is not None and deployment.schedule.timezone == "Europe/London"
        # daily: one missed run plus the retry room before the freshness check alerts
        assert declaration.freshness_bound == dt.timedelta(hours=30)


@pytest.mark.slow
def test_generated_code_passes_ruff_and_mypy(scaffolded: Scaffolded) -> None:
    root = scaffolded.root
    for command in (["check", "."], ["format", "--check", "."]):
        done = run([PYTHON, "-m", "ruff", *command], root)
        assert done.returncode == 0, done.stdout + done.stderr
    files = sorted(f for name in VARIANTS for f in own_files(name, kind_of(name)) if f.endswith(".py"))
    done = run([PYTHON, "-m", "mypy", *files, "tools/scaffold", "declarations/__init__.py"], root)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_generated_tests_and_consistency_checks_pass(scaffolded: Scaffolded) -> None:
    root = scaffolded.root
    tests = [
        f"tests/{layer}/test_{name}.py" for name in VARIANTS for layer in ("sources", "pipelines", "flows")
    ]
    consistency = [
        "tests/flows/test_operations.py::test_every_declared_pipeline_has_a_freshness_bound",
        "tests/pipelines/test_destinations.py",
        "tests/deploy/test_docs.py",
    ]
    if (root / "tools" / "deployments.py").is_file():  # prefect.yaml is generated from the declarations
        done = run([PYTHON, "-m", "tools.deployments"], root)
        assert done.returncode == 0, done.stdout + done.stderr
        assert all(f"flows/{name}.py:{name}_flow" in (root / "prefect.yaml").read_text() for name in VARIANTS)
        consistency += ["tests/deploy/test_prefect_yaml.py", "tests/deploy/test_generated.py"]
    # without the captured logs, a failure's own lines (the assertion, the exception) fit in the summary
    pytest_options = ["-q", "-n0", "-p", "no:cacheprovider", "--show-capture=no", "--tb=short"]
    done = run([PYTHON, "-m", "pytest", *pytest_options, *tests, *consistency], root)
    summary = done.stdout[-4000:] + done.stderr[-2000:]
    assert done.returncode == 0, summary
    passed = int(re.search(r"(\d+) passed", done.stdout).group(1))  # type: ignore[union-attr]
    assert passed >= 6 * len(VARIANTS), summary  # nothing silently deselected


# -- what it refuses ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy nothing may change (the refusal tests check it byte for byte)."""
    return copy_repository(tmp_path_factory.mktemp("pristine") / "repo")


def refuse(root: Path, argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    before = snapshot(root)
    assert scaffold.main(argv, root=root) == 2
    assert snapshot(root) == before, "a refused request changed the repository"
    err = capsys.readouterr().err
    assert "nothing was written" in err
    return err


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("Orders", "lower snake case"),
        ("2orders", "lower snake case"),
        ("sales-orders", "lower snake case"),
        ("sales__orders", "lower snake case"),
        ("class", "keyword"),
        ("match", "keyword"),
        ("list", "shadow"),
        ("records", "shadow"),
        ("json", "Python module"),
        ("dlt", "Python module"),
        ("tests", "Python module"),
        ("runtime", "top-level config section"),
        ("x" * 33, "longer than 32"),
        ("currencies", "sources/currencies already exists"),
        ("hubspot", "declarations/hubspot.yaml already exists"),
    ],
)
def test_bad_or_taken_names_are_refused(
    pristine: Path, name: str, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert reason in refuse(pristine, [name, "--primary-key", "id"], capsys)


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        (["--write-disposition", "merge"], "merge needs --primary-key"),
        (["--primary-key", "Bad-Column"], "lower snake case column"),
        (["--primary-key", "id", "id"], "names a column twice"),
        (["--primary-key", "_dlt_id"], "_dlt columns belong to dlt"),
    ],
)
def test_bad_options_are_refused(
    pristine: Path, options: list[str], reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert reason in refuse(pristine, ["new_pipeline", *options], capsys)


@pytest.mark.parametrize(
    ("where", "reason"),
    [
        ("tests/fakes/new_pipeline.py", "tests/fakes/new_pipeline.py already exists"),
        ("pipelines/new_pipeline.py", "pipelines/new_pipeline.py already exists"),
        ("docs/new_pipeline.md", "docs/new_pipeline.md already exists"),
        ("declarations/new_pipeline.yaml", "new_pipeline.yaml already exists"),
        ("deployment", "declarations/hubspot.yaml: 'hubspot' already uses 'new_pipeline'"),
        ("config", "[sources.new_pipeline] already exists"),
    ],
)
def test_a_name_in_use_anywhere_is_refused_and_nothing_is_overwritten(
    tmp_path: Path, where: str, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copy_repository(tmp_path / "repo")
    if where == "deployment":
        path = root / "declarations" / "hubspot.yaml"
        path.write_text(path.read_text().replace("name: hubspot-daily", "name: new-pipeline-daily"))
    elif where == "config":
        with (root / ".dlt" / "config.toml").open("a") as config:
            config.write('\n[sources.new_pipeline]\nbase_url = "https://example.invalid"\n')
    else:
        (root / where).write_text("# someone's work in progress\n")
    assert reason in refuse(root, ["new_pipeline", "--primary-key", "id"], capsys)
    if "/" in where:
        assert (root / where).read_text() == "# someone's work in progress\n"


def test_the_command_line_creates_and_walks_the_six_steps(tmp_path: Path) -> None:
    root = copy_repository(tmp_path / "repo")
    options = ["web_orders", "--kind", "sql", "--write-disposition", "replace"]
    command = [PYTHON, "-m", "tools.scaffold", *options]
    done = run(command, root)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    steps = re.findall(r"^  (\d)\. (\w+)", out, re.MULTILINE)
    assert steps == [
        ("1", "Source"),
        ("2", "Pipeline"),
        ("3", "Flow"),
        ("4", "Deployment"),
        ("5", "Test"),
        ("6", "Secrets"),
    ]
    assert "uv run pytest tests/sources/test_web_orders.py" in out
    assert "uv run python -m tools.deployments" in out and "[sources.web_orders]" in out
    assert "created  declarations/web_orders.yaml" in out and "updated" not in out
    # a second run of the same command refuses: the name is now taken
    before = snapshot(root)
    again = run(command, root)
    assert again.returncode == 2 and "nothing was written" in again.stderr
    assert snapshot(root) == before


def test_the_agent_skill_uses_the_scaffolder_and_walks_the_six_steps() -> None:
    text = (REPO / ".claude" / "skills" / "add-dlt-pipeline" / "SKILL.md").read_text()
    front, _, body = text.removeprefix("---\n").partition("\n---\n")
    meta = yaml.safe_load(front)
    assert meta["name"] == "add-dlt-pipeline" and len(meta["description"]) > 50
    assert "uv run python -m tools.scaffold NAME" in body and "utils.scaffold" not in body
    headings = re.findall(r"^## ([1-6])\. (\w+)", body, re.MULTILINE)
    assert [h[1] for h in headings] == ["Source", "Pipeline", "Flow", "Deployment", "Test", "Secrets"]
    em_dash = "\u2014"  # house style: spaced hyphens
    scaffolder = [p for p in (REPO / "tools" / "scaffold").rglob("*") if p.suffix in (".py", ".jinja")]
    assert em_dash not in text and not [p for p in scaffolder if em_dash in p.read_text()]


def test_a_taken_name_is_reported_as_taken_whatever_is_on_the_import_path(
    pristine: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Prefect puts flows/ on sys.path when it loads a flow by entrypoint: not a top-level module."""
    monkeypatch.syspath_prepend(str(REPO / "flows"))
    err = refuse(pristine, ["currencies", "--primary-key", "id"], capsys)
    assert "sources/currencies already exists" in err and "Python module" not in err
