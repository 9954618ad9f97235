"""The only outcomes a fuzzed response may have: a clean result, or a typed error naming the provider
and holding no secret. Anything else (a raw ``KeyError``, ``TypeError``, ``RecursionError``...) escapes
and fails the example."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from dlt.extract.exceptions import ResourceExtractionError
from dlt.pipeline.exceptions import PipelineStepFailed

from utils.http import ApiError

WRAPPERS: tuple[type[BaseException], ...] = (ResourceExtractionError, PipelineStepFailed)
"""dlt's wrappers around a source's error: allowed when their root cause is a typed error."""

T = TypeVar("T")


class Outcome:
    """What one example ended with; counted per test so the report can say how many of each."""

    def __init__(self) -> None:
        self.loaded = 0
        self.errors = 0


def root_cause(exc: BaseException) -> BaseException:
    """The innermost cause of ``exc`` (dlt wraps a source's error in its own step and extract errors)."""
    while exc.__cause__ is not None or getattr(exc, "exception", None) is not None:
        inner = exc.__cause__ or exc.exception  # type: ignore[attr-defined]
        if inner is exc:
            break
        exc = inner
    return exc


def check_error(
    exc: BaseException,
    provider: str,
    secrets: Iterable[str],
    types: tuple[type[BaseException], ...] = (ApiError,),
) -> str:
    """Assert ``exc`` is (or wraps) one of ``types``, names ``provider`` and leaks no secret."""
    cause = root_cause(exc)
    assert isinstance(cause, types), f"untyped error surfaced: {type(cause).__name__}: {cause}"
    text = f"{exc}\n{cause}"
    assert provider.lower() in text.lower(), f"the error does not name {provider}: {text[:300]}"
    for secret in secrets:
        assert secret not in text, "a secret is in the error text"
    return str(cause)


def attempt(
    call: Callable[[], T],
    provider: str,
    secrets: Iterable[str],
    outcome: Outcome,
    types: tuple[type[BaseException], ...] = (ApiError,),
) -> T | None:
    """Run ``call``: its result, or ``None`` after checking the typed error it raised."""
    try:
        result = call()
    except (*types, *WRAPPERS) as exc:
        check_error(exc, provider, secrets, types)
        outcome.errors += 1
        return None
    outcome.loaded += 1
    return result
