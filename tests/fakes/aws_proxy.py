"""A fault-injecting HTTP proxy in front of the moto server, for AWS services such as Secrets Manager.

Requests are forwarded unchanged (signature, headers, body) to moto over loopback, and recorded, so
tests can count the calls a client really made and script AWS-shaped failures (throttling, dropped
connections) that moto itself never produces. Point a client at it with the standard per-service
setting, e.g. ``AWS_ENDPOINT_URL_SECRETS_MANAGER``.
"""

from __future__ import annotations

import json
from collections import Counter

import requests

from tests.fakes.base import FakeApi, Request, Response

HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "host"})


class AwsProxy(FakeApi):
    """Forwards to ``upstream`` (moto) unless a fault is scripted with :meth:`FakeApi.fail`."""

    def __init__(self, upstream: str) -> None:
        super().__init__()
        self.upstream = upstream.rstrip("/")
        self._session = requests.Session()

    def handle(self, request: Request) -> Response:
        headers = {k: v for k, v in request.headers.items() if k not in HOP_BY_HOP}
        headers["host"] = request.headers.get("host", "")  # keep the signed host
        answer = self._session.request(
            request.method, self.upstream + request.path, data=request.body, headers=headers, timeout=30
        )
        out = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
        return Response(answer.status_code, answer.content, out)

    def throttle(self, times: int = 1) -> None:
        """Answer the next ``times`` calls as Secrets Manager does when it throttles."""
        body = {"__type": "ThrottlingException", "message": "Rate exceeded"}
        self.fail(
            400, times=times, body=json.dumps(body), headers={"Content-Type": "application/x-amz-json-1.1"}
        )

    def calls(self, operation: str) -> list[Request]:
        """Recorded calls of a JSON-protocol operation (``GetSecretValue``)."""
        return [r for r in self.requests if r.headers.get("x-amz-target", "").endswith("." + operation)]

    def secret_reads(self) -> Counter[str]:
        """How many times each secret name was read with GetSecretValue."""
        return Counter(str(r.json()["SecretId"]) for r in self.calls("GetSecretValue"))
