"""Requests per minute per user, from the tier's ``requests_per_minute`` (DESIGN §5).

A token bucket per user: it holds a minute's worth of requests, so a burst (a page of widgets
loading, a script's loop) goes through and only a sustained rate above the quota is refused,
with the seconds until the next request would pass as ``Retry-After``. Buckets live in the
process that serves the API: under JupyterHub that is the one central service, so the limit is
global. Job processes are not counted against their owner: their traffic (metrics every
100 ms) is bounded by the runtime's batching and would otherwise starve the person's own UI.
"""

from __future__ import annotations

import math
import time

from traitlets import Dict
from traitlets.config import LoggingConfigurable

from ..errors import RateLimited
from ..identity import Principal, quotas_of


class RateLimiter(LoggingConfigurable):
    tiers = Dict(help="Tier name → quotas (see AIStudio.tiers); requests_per_minute 0 means no limit.")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        #: username → (tokens left, monotonic time they were counted)
        self._buckets: dict[str, tuple[float, float]] = {}

    def check(self, who: Principal) -> None:
        """Take one request from ``who``'s bucket, or raise RateLimited (429 + Retry-After)."""
        per_minute = quotas_of(self.tiers, who).get("requests_per_minute") or 0
        if per_minute <= 0:
            return
        now = time.monotonic()
        tokens, then = self._buckets.get(who.username, (float(per_minute), now))
        tokens = min(float(per_minute), tokens + (now - then) * per_minute / 60.0)
        if tokens < 1.0:
            self._buckets[who.username] = (tokens, now)
            wait = max(1, math.ceil((1.0 - tokens) * 60.0 / per_minute))
            raise RateLimited(f"More than {per_minute} requests a minute; try again in {wait} s.", {"limit": per_minute}, retry_after=wait)
        self._buckets[who.username] = (tokens - 1.0, now)
