"""exchange_rates into S3 (moto) with the connection cut during uploads, before or after S3 stored them.

A proxy in front of moto (``tests/fakes/aws_proxy.py``, the run's ``AWS_ENDPOINT_URL``) closes the
connection without an answer on PUTs under the dataset's prefix: either before forwarding the upload
(nothing stored) or after moto stored the object (the client cannot tell it succeeded - the ambiguous
case). This covers the data files, the state file and the ``_dlt_loads`` marker alike. A brief cut
must be absorbed by the client's retries; a lasting one must fail the run clearly, and the retry must
leave every rate in S3 exactly once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any, Self

import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from pipelines import exchange_rates
from tests.fakes.aws_proxy import HOP_BY_HOP, AwsProxy
from tests.fakes.base import Request
from tests.fakes.frankfurter import FakeFrankfurter, is_working_day
from tests.fixtures.aws import BUCKET, Aws
from tests.fixtures.frankfurter import FAKE_TODAY
from tests.pipelines.test_exchange_rates_s3 import assert_unique, keys, read_rates
from utils.runner import attempt

pytestmark = pytest.mark.reliability

PREFIX = f"/{BUCKET}/exchange-rates/"
QUOTES = ("USD", "GBP", "JPY")
LASTING = 10_000
"""More cuts than botocore's, s3fs's and dlt's retries together (AWS_MAX_ATTEMPTS=2 keeps that quick)."""
FIRST: dict[str, Any] = {"backfill": True, "start_date": "2026-09-01", "end_date": "2026-10-31"}


class CuttingProxy(AwsProxy):
    """AwsProxy that can also forward an upload to moto and then close the connection unanswered."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.cut_before_store = 0
        self.cut_after_store = 0
        self.cut = 0

    def start(self, port: int = 0) -> Self:
        super().start(port)
        assert self._server is not None
        handler = self._server.RequestHandlerClass  # GET and POST only: S3 also needs these
        for method in ("PUT", "HEAD", "DELETE"):
            setattr(handler, f"do_{method}", handler.do_GET)  # type: ignore[attr-defined]
        return self

    def _answer(self, handler: Any, request: Request, path: str) -> None:
        if request.method == "PUT" and path.startswith(PREFIX) and self.cut_after_store > 0:
            self.cut_after_store -= 1
            self.cut += 1
            self.handle(request)  # moto stores the object...
            handler.close_connection = True
            handler.connection.close()  # ...and the answer never reaches the client
            return
        if request.method == "PUT" and path.startswith(PREFIX) and self.cut_before_store > 0:
            self.cut_before_store -= 1
            self.cut += 1
            handler.close_connection = True
            handler.connection.close()
            return
        if request.method == "HEAD":  # the answer has no body but keeps the object's Content-Length
            answer = self._session.head(self.upstream + request.path, headers=self._forwarded(request))
            handler.send_response(answer.status_code)
            for key, value in answer.headers.items():
                if key.lower() not in ("connection", "keep-alive", "transfer-encoding"):
                    handler.send_header(key, value)
            handler.end_headers()
            return
        super()._answer(handler, request, path)

    @staticmethod
    def _forwarded(request: Request) -> dict[str, str]:
        headers = {k: v for k, v in request.headers.items() if k not in HOP_BY_HOP}
        headers["host"] = request.headers.get("host", "")
        return headers


@pytest.fixture
def proxy(aws: Aws, s3: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[CuttingProxy]:
    fake = CuttingProxy(aws.endpoint_url).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", fake.base_url)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")  # botocore's retries (default 5): a lasting cut fails sooner
    # dlt hands it to s3fs, whose clients fsspec caches per set of options: a new proxy, a new client
    monkeypatch.setenv("DESTINATION__FILESYSTEM__CREDENTIALS__ENDPOINT_URL", fake.base_url)
    yield fake
    fake.stop()


def expected_rates() -> set[tuple[dt.date, str]]:
    first = dt.date.fromisoformat(FIRST["start_date"])
    days = (first + dt.timedelta(n) for n in range((FAKE_TODAY - first).days + 1))
    return {(d, q) for d in days if is_working_day(d) for q in QUOTES}


def assert_each_rate_once(s3: Any) -> int:
    table = read_rates(s3)
    rows = assert_unique(table)
    found = set(
        zip(table.column("rate_date").to_pylist(), table.column("quote_currency").to_pylist(), strict=True)
    )
    assert found == expected_rates(), "every working day and quote, nothing lost"
    return rows


@pytest.mark.parametrize("where", ["before-store", "after-store"])
@pytest.mark.parametrize("times", [1, LASTING], ids=["brief", "lasting"])
def test_an_upload_cut_loses_and_duplicates_nothing(
    where: str, times: int, frankfurter: FakeFrankfurter, s3: Any, proxy: CuttingProxy
) -> None:
    exchange_rates.run(**FIRST)
    assert proxy.requests, "the pipeline's S3 calls went through the proxy"
    if where == "after-store":
        proxy.cut_after_store = times
    else:
        proxy.cut_before_store = times

    failed = None
    with attempt("daily"):
        try:
            exchange_rates.run()
        except PipelineStepFailed as exc:
            failed = exc
    assert proxy.cut, "no upload was cut: the test proved nothing"
    if times > 1:
        assert failed is not None, "a lasting cut cannot end in success"
        assert failed.step == "load", failed
        proxy.cut_before_store = proxy.cut_after_store = 0  # S3 is reachable again
        with attempt("daily"):  # the orchestrator's retry, once S3 is reachable again
            report = exchange_rates.run()
        assert report.extracted is False, "the retry finished the package instead of reading again"
    else:
        assert failed is None, f"the client's retries should absorb one cut: {failed}"
    assert exchange_rates.create_pipeline().has_pending_data is False
    rows = assert_each_rate_once(s3)
    print(f"{where} x{times}: {proxy.cut} upload(s) cut, {rows} rows once, {len(keys(s3))} objects")
