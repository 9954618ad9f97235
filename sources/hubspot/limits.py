"""Client-side rate limits for the HubSpot client: a sliding window per limit, applied to every HTTP
attempt (retries included) by a ``requests`` adapter, and the wait to add when a 429 has no
``Retry-After``.

Owner: data platform team (#data-platform). Why this is hand-written rather than pyrate-limiter or
requests-ratelimiter: see docs/hubspot.md ("Rate limiter").
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from utils.http import json_body

_COUNT_LOCK = threading.Lock()
WINDOW_MARGIN: Final = 0.1
"""Seconds added to each rate-limit window: HubSpot counts requests when they arrive, and network
jitter can bring two requests sent a full window apart closer together than that."""


class SlidingWindowLimiter:
    """At most ``max_requests`` in any ``per_seconds`` window; waits only as long as needed."""

    def __init__(
        self,
        max_requests: int,
        per_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_requests < 1 or per_seconds <= 0:
            raise ValueError("a rate limit needs at least one request per positive time window")
        self.max_requests = max_requests
        self.per_seconds = per_seconds
        self.slept = 0.0
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Block until one more request fits in the window; return the seconds waited."""
        waited = 0.0
        with self._lock:
            while True:
                now = self._clock()
                while self._sent and now - self._sent[0] >= self.per_seconds:
                    self._sent.popleft()
                if len(self._sent) < self.max_requests:
                    self._sent.append(now)
                    self.slept += waited
                    return waited
                wait = self.per_seconds - (now - self._sent[0])
                self._sleep(wait)
                waited += wait


class RateLimitedAdapter(HTTPAdapter):
    """Applies the limiters to each HTTP attempt (the retrying session calls ``send`` per attempt)."""

    def __init__(
        self,
        general: SlidingWindowLimiter,
        search: SlidingWindowLimiter,
        counts: Counter[str],
        by_object: Counter[str] | None = None,
    ) -> None:
        super().__init__()
        self.general = general
        self.search = search
        self.counts = counts
        self.by_object: Counter[str] = Counter() if by_object is None else by_object
        self.extra: dict[str, int] | None = None
        """A caller's dict that also receives the counts by object (see ``HubSpotClient.count_into``)."""

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        path = urlsplit(request.url or "").path
        what = object_of(path)
        self.by_object[what] += 1
        if self.extra is not None:
            with _COUNT_LOCK:
                self.extra[what] = self.extra.get(what, 0) + 1
        if request.method == "POST" and path.endswith("/search"):
            self.search.acquire()
            self.counts["search"] += 1
        elif "/associations/" in path:
            self.counts["associations"] += 1
        elif path.endswith("/batch/read"):
            self.counts["batch_read"] += 1
        elif "/properties/" in path:
            self.counts["properties"] += 1
        else:
            self.counts["list"] += 1
        self.general.acquire()
        response = super().send(request, *args, **kwargs)
        if response.status_code == 429 and not response.headers.get("Retry-After"):
            response.headers["Retry-After"] = str(rate_limit_wait(response))
        return response


def object_of(path: str) -> str:
    """What a CRM API path reads: the object (``/crm/v3/objects/deals/search``, ``/crm/v3/properties/deals``,
    ``/crm/v4/associations/deals/contacts/...`` -> ``deals``) or the endpoint (``owners``, ``pipelines``,
    ``schemas``)."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 4 and parts[0] == "crm" and parts[2] in ("objects", "properties", "associations"):
        return parts[3]
    return parts[2] if len(parts) >= 3 and parts[0] == "crm" else path


def rate_limit_wait(response: requests.Response) -> int:
    """Seconds to wait after a 429 that came without ``Retry-After`` (HubSpot often sends none): one
    second for the per-second search policy, else the rolling window (``X-HubSpot-RateLimit-Interval-
    Milliseconds``, 10 s). dlt's retrying session then waits that long, capped by ``[runtime]
    request_max_retry_delay``, for at most ``request_max_attempts`` attempts."""
    try:
        policy = str(json_body(response).get("policyName") or "")
    except (ValueError, AttributeError):
        policy = ""
    if policy == "SECONDLY":
        return 1
    interval = response.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds", "")
    return max(1, -(-int(interval) // 1000)) if interval.isdigit() else 10
