"""The volume and schema rules on their own, over made-up histories (test_checks.py seeds real ones)."""

from __future__ import annotations

from declarations import Checks, SchemaCheck, VolumeCheck
from utils.checks import LoadMetrics, judge, schema, volume, worst

COLUMNS = frozenset({"id", "name", "price"})


def loads(*rows: int, present: frozenset[str] = COLUMNS) -> list[LoadMetrics]:
    return [
        LoadMetrics(str(1000 + i), n, present if n else frozenset(), (), False) for i, n in enumerate(rows)
    ]


def test_an_empty_load_is_a_collapse_unless_the_declaration_calls_empty_loads_normal() -> None:
    history = loads(31, 31, 31, 0, 31, 31, 31, 31, 31, 0)
    judged = volume("rates", history, VolumeCheck())
    assert judged.state == "warn" and judged.detail.startswith("collapse: 0 rows"), judged
    normal = volume("rates", history, VolumeCheck(empty_loads="normal"))
    assert normal.state == "ok" and "no rows (normal" in normal.detail
    too_few = volume("rates", loads(0, 31, 31, 31, 31, 31, 31, 31), VolumeCheck(empty_loads="normal"))
    assert "not judged: 6 earlier load(s)" in too_few.detail, "empty loads are not history either"


def test_steady_counts_do_not_warn_on_small_moves_but_do_on_large_ones() -> None:
    steady = [15] * 8
    assert volume("currencies", loads(*steady, 16), VolumeCheck()).state == "ok", "MAD 0: the floor holds"
    assert volume("currencies", loads(*steady, 30), VolumeCheck()).detail.startswith("explosion: 30 rows")
    assert volume("currencies", loads(*steady, 30), VolumeCheck(severity="fail")).state == "fail"
    assert volume("currencies", loads(*steady, 30), VolumeCheck(min_change=2.0)).state == "ok"
    sparse = volume("contacts__associations", loads(0, 0, 0, 4, 0, 0, 0, 0, 12), VolumeCheck())
    assert sparse.state == "ok" and "most of the last 8 loads had none" in sparse.detail


def test_too_little_history_is_not_judged() -> None:
    result = volume("products", loads(2000, 2100, 3), VolumeCheck())
    assert result.state == "ok" and "not judged: 2 earlier load(s), 7 needed" in result.detail
    assert volume("products", loads(2000, 2100, 3), VolumeCheck(min_history=2)).state == "warn"


def test_a_sparse_column_is_not_a_dropped_one_and_ignored_columns_stay_quiet() -> None:
    sparse = [*loads(5, 5), *loads(5, present=COLUMNS | {"deleted_at"}), *loads(5, 5)]
    assert schema("products", sparse, SchemaCheck()).state == "ok"
    dropped = [*loads(5, 5, 5), *loads(5, present=COLUMNS - {"price"})]
    assert "stopped arriving: price" in schema("products", dropped, SchemaCheck()).detail
    assert schema("products", dropped, SchemaCheck(ignore_columns=["products.price"])).state == "ok"
    assert schema("products", dropped, SchemaCheck(ignore_columns=["other.price"])).state == "warn"


def test_the_worst_state_wins() -> None:
    results = judge({"a": loads(*[10] * 8, 1), "b": loads(1, 1)}, Checks())
    assert worst(results) == "warn" and worst([]) == "ok"
