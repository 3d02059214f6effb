"""The intake service's per-client token bucket (worker/tools/intake.py); the service itself is tested end to end in
tests/integration/test_intake.py."""

from __future__ import annotations

from worker.tools.intake import TokenBuckets


def test_a_client_gets_its_burst_then_the_rate() -> None:
    buckets = TokenBuckets(rate=2.0, burst=3)
    assert [buckets.take("10.0.0.1", 100.0) for _ in range(4)] == [True, True, True, False]
    assert buckets.take("10.0.0.2", 100.0)  # another client has its own bucket
    assert not buckets.take("10.0.0.1", 100.4)  # 0.8 of a token so far
    assert buckets.take("10.0.0.1", 100.5)  # 1 token after half a second at 2 a second
    assert not buckets.take("10.0.0.1", 100.5)


def test_an_idle_client_refills_to_the_burst_and_no_more() -> None:
    buckets = TokenBuckets(rate=1.0, burst=2)
    assert buckets.take("a", 0.0)
    assert buckets.take("a", 0.0)
    assert [buckets.take("a", 1000.0) for _ in range(3)] == [True, True, False]


def test_memory_is_bounded_by_forgetting_the_longest_idle_clients() -> None:
    buckets = TokenBuckets(rate=0.001, burst=1, max_clients=2)
    assert buckets.take("a", 0.0)
    assert buckets.take("b", 1.0)
    assert buckets.take("c", 2.0)  # "a" is forgotten: it starts again with a full bucket
    assert buckets.take("a", 3.0)
    assert not buckets.take("c", 4.0)  # "c" is still remembered (the most recent)


def test_behind_a_proxy_the_client_is_the_address_the_proxy_saw() -> None:
    from aiohttp.test_utils import make_mocked_request

    from worker.tools.intake import _client_ip

    request = make_mocked_request("POST", "/leads", headers={"X-Forwarded-For": "1.2.3.4, 203.0.113.9"})
    assert _client_ip(request, trust_forwarded=True) == "203.0.113.9"  # "1.2.3.4" was the client's own claim
    assert _client_ip(request, trust_forwarded=False) != "203.0.113.9"
