"""``leadflow intake``: web-to-lead over HTTP, a thin aiohttp shell around :mod:`worker.lead.form`.

``POST /leads`` (urlencoded or JSON) answers 202 ``{"lead_id": ...}`` once the broker has acknowledged the lead's
events (acks=all), 400 ``{"errors": {field: problem}}``, 401 (shared secret), 403 (origin), 413 (too large), 429
(rate limit, per client IP) or 503 (the broker did not acknowledge: nothing was promised, the sender retries; a
retry of the same form produces the same event ids, which the worker applies once). ``GET /metrics`` for Prometheus,
``GET /healthz`` for a liveness probe.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import logging
import time
from collections import OrderedDict
from typing import Literal

from aiohttp import web
from aiokafka import AIOKafkaProducer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from worker.lead.form import Accepted, Honeypot, Invalid, form_events, parse_body
from worker.settings import Settings
from worker.stream.topics import ensure_topics, unreachable

__all__ = ["IntakeMetrics", "TokenBuckets", "make_app", "run_intake"]

logger = logging.getLogger(__name__)

SECRET_HEADER = "X-Leadflow-Secret"  # noqa: S105  # the header's name, not a secret
Outcome = Literal[
    "accepted", "invalid", "honeypot", "rate_limited", "too_large", "forbidden", "unauthorized", "unavailable"
]


class IntakeMetrics:
    """The intake service's metrics, on the registry passed in."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "leadflow_intake_requests",
            "Form posts by outcome (accepted, invalid, honeypot, rate_limited, too_large, forbidden, unauthorized,"
            " unavailable)",
            ["outcome"],
            registry=registry,
        )
        for outcome in Outcome.__args__:  # type: ignore[attr-defined]  # a Literal's values
            self.requests.labels(outcome)
        self.latency = Histogram(
            "leadflow_intake_produce_seconds",
            "Time from a valid post to the broker's acknowledgement of its events",
            registry=registry,
        )


class TokenBuckets:
    """A token bucket per client: ``rate`` tokens a second, at most ``burst``; the oldest idle clients forgotten."""

    def __init__(self, rate: float, burst: int, max_clients: int = 100_000) -> None:
        self.rate, self.burst, self.max_clients = rate, float(burst), max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, client: str, now: float) -> bool:
        """Whether ``client`` may post now (and spend a token if so)."""
        tokens, last = self._buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        allowed = tokens >= 1
        self._buckets[client] = (tokens - 1 if allowed else tokens, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return allowed


class _Producer:
    """One aiokafka producer, started on first use and again after a failure (the broker may come later)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()
        self._topic_checked = False

    async def _started(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                s = self.settings
                if not self._topic_checked:  # the worker creates it too; whichever starts first, same partitions
                    why = await asyncio.to_thread(unreachable, s, min(3.0, s.intake_send_timeout))
                    if why is not None:
                        raise ConnectionError(why)
                    await asyncio.to_thread(ensure_topics, s, [s.topic_leads])
                    self._topic_checked = True
                producer = AIOKafkaProducer(
                    bootstrap_servers=s.bootstrap_servers,
                    client_id=f"{s.app_id}-intake",
                    acks="all",
                    linger_ms=2,
                    request_timeout_ms=int(s.intake_send_timeout * 1000),
                    compression_type=s.compression_type,
                    **s.kafka_auth(),
                )
                try:
                    await producer.start()
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
            return self._producer

    async def send(self, records: list[tuple[bytes, bytes]]) -> None:
        """Send the records and wait until the broker has acknowledged every one (raises if it does not)."""
        producer = await self._started()
        try:
            futures = [await producer.send(self.settings.topic_leads, key=k, value=v) for k, v in records]
            await asyncio.gather(*futures)
        except BaseException:  # a timeout's cancellation too: start afresh, unless another request already has
            await self._drop(producer)
            raise

    async def _drop(self, producer: AIOKafkaProducer) -> None:
        async with self._lock:
            current = self._producer is producer
            if current:
                self._producer = None
        if current:
            await producer.stop()

    async def close(self) -> None:
        if self._producer is not None:
            await self._drop(self._producer)


def _client_ip(request: web.Request, trust_forwarded: bool) -> str:
    if trust_forwarded and (forwarded := request.headers.get("X-Forwarded-For")):
        return forwarded.rsplit(",", 1)[-1].strip()  # the address our proxy saw; the ones before it are hearsay
    return request.remote or "unknown"


def make_app(settings: Settings, registry: CollectorRegistry) -> web.Application:  # one handler per route
    """The intake web application; its producer starts on the first post and stops with the application."""
    metrics = IntakeMetrics(registry)
    buckets = TokenBuckets(settings.intake_rate, settings.intake_burst)
    producer = _Producer(settings)
    origins = settings.intake_origins
    secret = settings.intake_secret.get_secret_value().encode() if settings.intake_secret is not None else None

    def cors(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is not None and ("*" in origins or origin.rstrip("/") in origins):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
        return response

    def answer(request: web.Request, outcome: Outcome, status: int, body: object) -> web.StreamResponse:
        metrics.requests.labels(outcome).inc()
        return cors(request, web.json_response(body, status=status))

    async def preflight(request: web.Request) -> web.StreamResponse:
        response = web.Response(status=204)
        response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = f"Content-Type, {SECRET_HEADER}"
        response.headers["Access-Control-Max-Age"] = "600"
        return cors(request, response)

    async def post_lead(request: web.Request) -> web.StreamResponse:
        if not buckets.take(_client_ip(request, settings.intake_trust_forwarded), time.monotonic()):
            return answer(request, "rate_limited", 429, {"error": "too many posts from this address; retry later"})
        origin = request.headers.get("Origin")
        if origin is not None and "*" not in origins and origin.rstrip("/") not in origins:
            return answer(request, "forbidden", 403, {"error": f"origin {origin!r} may not post leads here"})
        if secret is not None:
            given = request.headers.get(SECRET_HEADER, "").encode()
            if not hmac.compare_digest(given, secret):
                return answer(request, "unauthorized", 401, {"error": f"missing or wrong {SECRET_HEADER} header"})
        limit = settings.intake_max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            return answer(request, "too_large", 413, {"error": f"the body is larger than {limit} bytes"})
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return answer(request, "too_large", 413, {"error": f"the body is larger than {limit} bytes"})
        fields = parse_body(request.headers.get("Content-Type", ""), body)
        result = (
            fields
            if isinstance(fields, Invalid)
            else form_events(fields, received_at=dt.datetime.now(dt.UTC), honeypot=settings.intake_honeypot)
        )
        if isinstance(result, Invalid):
            return answer(request, "invalid", 400, {"errors": result.problems})
        if isinstance(result, Honeypot):
            return answer(request, "honeypot", 202, {"lead_id": result.lead_id})
        return await produce(request, result)

    async def produce(request: web.Request, result: Accepted) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            await asyncio.wait_for(producer.send(result.records()), settings.intake_send_timeout)
        except Exception as exc:  # any failure to be acknowledged is the same answer: 503
            logger.warning("the broker did not acknowledge lead %s: %r", result.lead_id, exc)
            response = answer(request, "unavailable", 503, {"error": "the lead could not be stored; retry later"})
            response.headers["Retry-After"] = "5"
            return response
        metrics.latency.observe(time.perf_counter() - started)
        return answer(request, "accepted", 202, {"lead_id": result.lead_id})

    async def metrics_page(request: web.Request) -> web.StreamResponse:
        response = web.Response(body=generate_latest(registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def healthz(request: web.Request) -> web.StreamResponse:
        return web.json_response({"ok": True})

    async def stop_producer(app: web.Application) -> None:
        await producer.close()

    app = web.Application(client_max_size=settings.intake_max_body_bytes)
    app.router.add_post("/leads", post_lead)
    app.router.add_route("OPTIONS", "/leads", preflight)
    app.router.add_get("/metrics", metrics_page)
    app.router.add_get("/healthz", healthz)
    app.on_cleanup.append(stop_producer)
    return app


def run_intake(settings: Settings) -> int:
    """``leadflow intake``: serve until stopped (SIGINT or SIGTERM)."""
    app = make_app(settings, CollectorRegistry())
    logger.info(
        "intake listening on http://%s:%d/leads, producing to %r on %s",
        settings.intake_host,
        settings.intake_port,
        settings.topic_leads,
        settings.broker_url,
    )
    web.run_app(app, host=settings.intake_host, port=settings.intake_port, print=None, access_log=None)
    return 0
