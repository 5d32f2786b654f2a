"""The tier's requests_per_minute: a minute's burst passes, then 429 with Retry-After and the
error envelope, per user; other users keep their own budget."""

from __future__ import annotations

import pytest


@pytest.fixture
def aistudio_config(aistudio_config):
    return {**aistudio_config, "tiers": {"default": {"requests_per_minute": 6}, "gold": {"requests_per_minute": 0}}, "user_tiers": {"carol": "gold"}}


async def test_a_user_past_the_rate_is_told_when_to_come_back(api):
    statuses = [(await api("GET", "datasets")).status for _ in range(6)]
    assert statuses == [200] * 6
    refused = await api("GET", "datasets")
    assert refused.status == 429
    assert refused.error["code"] == "rate_limited" and refused.error["details"] == {"limit": 6}
    assert 1 <= int(refused.headers["Retry-After"]) <= 10
    # bob has a bucket of his own; carol's tier has no limit
    assert (await api("GET", "datasets", user="bob")).status == 200
    assert [(await api("GET", "me", user="carol")).status for _ in range(20)] == [200] * 20


async def test_unauthenticated_requests_are_not_counted(api):
    for _ in range(10):
        assert (await api("GET", "datasets", user=None)).status == 403
    assert (await api("GET", "datasets")).status == 200
