"""The scaffolder, in copies of the repository (``git ls-files``, so working changes are included).

One copy gets a pipeline of every kind and write disposition; their generated tests, ruff, mypy and
the repository's consistency tests (prefect.yaml, freshness bounds, secrets from the vault) then run
there in one go. Requests the scaffolder must refuse run against a copy that must stay byte for byte
the same.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from utils import scaffold

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
        if path.is_file()
    }


def clean_env() -> dict[str, str]:
    """This process's environment without what this test session set up (the copy's conftest does)."""
    prefixes = ("DLT", "PREFECT_", "SOURCES__", "DESTINATION__", "RUNTIME__", "PROVIDERS__", "AWS_")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


def run(command: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=timeout, check=False
    )


def generated_files(root: Path, name: str) -> list[str]:
    return sorted(
        str(path.relative_to(root))
        for path in scaffold._new_paths(name, root)
        for path in ([path] if path.is_file() else sorted(path.rglob("*.py")))
    )


# -- every kind and disposition in one copy -----------------------------------------------------------
@pytest.fixture(scope="module")
def scaffolded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = copy_repository(tmp_path_factory.mktemp("scaffolded") / "repo")
    if (REPO / ".mypy_cache").is_dir():  # a warm cache halves mypy's time; mypy re-checks what changed
        shutil.copytree(REPO / ".mypy_cache", root / ".mypy_cache")
    for name, options in VARIANTS.items():
        assert scaffold.main([name, *options], root=root) == 0, name
    yield root


def test_scaffolded_files_follow_the_layout(scaffolded: Path) -> None:
    for name, options in VARIANTS.items():
        kind = "sql" if "sql" in options else "api"
        files = generated_files(scaffolded, name)
        expected = {
            f"sources/{name}/__init__.py",
            f"sources/{name}/source.py",
            f"pipelines/{name}.py",
            f"flows/{name}.py",
            f"tests/fixtures/{name}.py",
            f"tests/sources/test_{name}.py",
            f"tests/pipelines/test_{name}.py",
            f"tests/flows/test_{name}.py",
        } | ({f"tests/fakes/{name}.py"} if kind == "api" else set())
        assert set(files) == expected
        source = (scaffolded / "sources" / name / "source.py").read_text()
        assert f'@dlt.source(section="{name}", name="{name}")' in source
        disposition = (
            options[options.index("--write-disposition") + 1] if "--write-disposition" in options else "merge"
        )
        assert f'write_disposition="{disposition}"' in source
        assert ("sql_table(" in source) == (kind == "sql")
        assert ("api_client(" in source) == (kind == "api")
        if kind == "api":
            assert "(FakeApi):" in (scaffolded / "tests" / "fakes" / f"{name}.py").read_text()
        else:
            assert "postgres: str" in (scaffolded / "tests" / "fixtures" / f"{name}.py").read_text()


def test_shared_files_keep_their_comments_anchors_and_layout(scaffolded: Path) -> None:
    for relative in (
        "prefect.yaml",
        "pipelines/_catalogue.py",
        ".dlt/config.toml",
        ".dlt/secrets.toml.example",
    ):
        before = (REPO / relative).read_text().splitlines()
        after = (scaffolded / relative).read_text().splitlines()
        # every original line is still there, in order, unchanged: the scaffolder only inserted lines
        remaining = iter(after)
        assert all(line in remaining for line in before), f"{relative}: an original line changed or moved"
        assert len(after) > len(before)
    before_yaml = (REPO / "prefect.yaml").read_text()
    after_yaml = (scaffolded / "prefect.yaml").read_text()
    comments = [line for line in before_yaml.splitlines() if line.lstrip().startswith("#")]
    assert comments and all(line in after_yaml.splitlines() for line in comments)
    assert after_yaml.count("&work_pool") == before_yaml.count("&work_pool") == 1
    assert after_yaml.count("*work_pool") == before_yaml.count("*work_pool") + len(VARIANTS)
    assert after_yaml.count("*one_at_a_time") == before_yaml.count("*one_at_a_time") + len(VARIANTS)
    document = yaml.safe_load(after_yaml)
    old = yaml.safe_load(before_yaml)
    assert document["deployments"][: len(old["deployments"])] == old["deployments"]
    added = {d["name"]: d for d in document["deployments"][len(old["deployments"]) :]}
    assert set(added) == {f"{name.replace('_', '-')}-daily" for name in VARIANTS}
    for name in VARIANTS:
        entry = added[f"{name.replace('_', '-')}-daily"]
        assert entry["entrypoint"] == f"flows/{name}.py:{name}_flow"
        assert entry["work_pool"] == old["definitions"]["work_pool"]  # the alias, resolved
        assert entry["tags"] == ["dlt", name, "daily"]


@pytest.mark.slow
def test_generated_code_passes_ruff_and_mypy(scaffolded: Path) -> None:
    for command in (["check", "."], ["format", "--check", "."]):
        done = run([PYTHON, "-m", "ruff", *command], scaffolded)
        assert done.returncode == 0, done.stdout + done.stderr
    files = [f for name in VARIANTS for f in generated_files(scaffolded, name)]
    done = run([PYTHON, "-m", "mypy", *files, "utils/scaffold.py", "pipelines/_catalogue.py"], scaffolded)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_generated_tests_and_consistency_checks_pass(scaffolded: Path) -> None:
    tests = [
        f"tests/{layer}/test_{name}.py" for name in VARIANTS for layer in ("sources", "pipelines", "flows")
    ]
    vault = (
        "tests/utils/test_vault_provider.py::"
        + "test_every_pipeline_resolves_its_documented_secrets_from_the_vault"
    )
    consistency = [
        "tests/deploy/test_prefect_yaml.py",
        "tests/flows/test_operations.py::test_every_pipeline_declares_a_freshness_bound",
        *(f"{vault}[{name}]" for name in VARIANTS),
    ]
    done = run([PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests, *consistency], scaffolded)
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
        ("hubspot", "prefect.yaml: deployment 'hubspot-daily' already uses"),
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
        ("freshness", "FRESHNESS_BOUNDS already has 'new_pipeline'"),
        ("config", "[sources.new_pipeline] already exists"),
        ("prefect.yaml", "already uses 'new_pipeline'"),
    ],
)
def test_a_name_in_use_anywhere_is_refused_and_nothing_is_overwritten(
    tmp_path: Path, where: str, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copy_repository(tmp_path / "repo")
    if where == "freshness":
        path = root / "pipelines" / "_catalogue.py"
        path.write_text(
            path.read_text().replace(
                "FRESHNESS_BOUNDS: Final[dict[str, dt.timedelta]] = {\n",
                'FRESHNESS_BOUNDS: Final[dict[str, dt.timedelta]] = {\n    "new_pipeline": dt.timedelta(1),\n'
                "",
            )
        )
    elif where == "config":
        with (root / ".dlt" / "config.toml").open("a") as config:
            config.write('\n[sources.new_pipeline]\nbase_url = "https://example.invalid"\n')
    elif where == "prefect.yaml":
        path = root / "prefect.yaml"
        path.write_text(
            path.read_text().replace(
                "tags: [dlt, hubspot, daily]", "tags: [dlt, hubspot, daily, new_pipeline]"
            )
        )
    else:
        (root / where).write_text("# someone's work in progress\n")
    assert reason in refuse(root, ["new_pipeline", "--primary-key", "id"], capsys)
    if where.endswith(".py"):
        assert (root / where).read_text() == "# someone's work in progress\n"


def test_next_steps_walk_the_six_steps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = copy_repository(tmp_path / "repo")
    assert scaffold.main(["web_orders", "--kind", "sql", "--write-disposition", "replace"], root=root) == 0
    out = capsys.readouterr().out
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
    assert "created  pipelines/web_orders.py" in out and "updated  prefect.yaml" in out
    # a second run of the same command refuses: the name is now taken
    before = snapshot(root)
    assert scaffold.main(["web_orders", "--kind", "sql", "--write-disposition", "replace"], root=root) == 2
    assert snapshot(root) == before


def test_the_agent_skill_uses_the_scaffolder_and_walks_the_six_steps() -> None:
    text = (REPO / ".claude" / "skills" / "add-dlt-pipeline" / "SKILL.md").read_text()
    front, _, body = text.removeprefix("---\n").partition("\n---\n")
    meta = yaml.safe_load(front)
    assert meta["name"] == "add-dlt-pipeline" and len(meta["description"]) > 50
    assert "uv run python -m utils.scaffold NAME" in body
    headings = re.findall(r"^## ([1-6])\. (\w+)", body, re.MULTILINE)
    assert [h[1] for h in headings] == ["Source", "Pipeline", "Flow", "Deployment", "Test", "Secrets"]
    em_dash = "\u2014"  # house style: spaced hyphens
    assert em_dash not in text and em_dash not in (REPO / "utils" / "scaffold.py").read_text()


def test_a_taken_name_is_reported_as_taken_whatever_is_on_the_import_path(
    pristine: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Prefect puts flows/ on sys.path when it loads a flow by entrypoint: not a top-level module."""
    monkeypatch.syspath_prepend(str(REPO / "flows"))
    err = refuse(pristine, ["currencies", "--primary-key", "id"], capsys)
    assert "sources/currencies already exists" in err and "Python module" not in err
