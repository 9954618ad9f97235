"""A webhook receiver on 127.0.0.1 standing in for Slack or an alerting endpoint: records every POST."""

from __future__ import annotations

from typing import Any

from tests.fakes.base import FakeApi, Request, Response


class FakeWebhook(FakeApi):
    prefix = "/hooks"

    def handle(self, request: Request) -> Response:
        if request.method != "POST" or request.path != "/hooks/alerts":
            return Response.json({"ok": False}, 404)
        return Response.json({"ok": True})

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [r.json() for r in self.requests if r.method == "POST"]

    @property
    def url(self) -> str:
        return f"{self.base_url}/alerts"
