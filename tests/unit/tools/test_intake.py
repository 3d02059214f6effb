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
