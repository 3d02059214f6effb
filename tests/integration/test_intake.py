"""``leadflow intake`` end to end: a real HTTP client posts to the real intake process, which produces to the
embedded broker, where a real worker decides; and the service's refusals (400, 401, 403, 413, 429, 503)."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import Flow
from worker.tools.broker import free_port

FORM = "application/x-www-form-urlencoded"


@contextmanager
def intake(env: dict[str, str], log: Path) -> Iterator[str]:
    """A ``leadflow intake`` process; yields its base URL once it answers."""
    port = free_port()
    full = {**os.environ, **env, "LEADFLOW_INTAKE_HOST": "127.0.0.1", "LEADFLOW_INTAKE_PORT": str(port)}
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "worker", "intake"], env=full, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"{url}/healthz", timeout=1).close()  # noqa: S310  # the http://127.0.0.1 service under test
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"intake did not start:\n{log.read_text(errors='replace')[-3000:]}") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)


def post(
    url: str, fields: dict[str, Any], *, as_json: bool = False, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    """POST a form (urlencoded, as a browser does, or JSON); the status and the JSON answer."""
    if as_json:
        body, kind = orjson.dumps(fields), "application/json"
    else:
        body, kind = urllib.parse.urlencode(fields).encode(), FORM
    request = urllib.request.Request(  # noqa: S310  # the http://127.0.0.1 service under test
        f"{url}/leads", data=body, method="POST", headers={"Content-Type": kind, **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310  # the http://127.0.0.1 service under test
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


def requests_by_outcome(url: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:  # noqa: S310  # the http://127.0.0.1 service under test
        text = response.read().decode()
    return {
        s.labels["outcome"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "leadflow_intake_requests_total"
    }


def test_a_posted_form_is_decided_by_the_worker_once_and_a_bot_is_dropped(flow: Flow, rules_file: Path) -> None:
    form = {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@engines.example",
        "company": "Analytical Engines",
        "URL": "engines.example",
        "employees": "250",
        "lead_source": "Web",
        "zip": "N1 9GU",
        "form": "pricing-page",
        "hp_name": "",
        "submit": "Send",
    }
    with intake(flow.env(), flow.tmp / "intake.log") as url:
        # posted before any worker runs (the service creates the leads topic): acknowledged means kept
        status, answer = post(url, form)
        assert status == 202, answer
        lead_id = answer["lead_id"]
        assert lead_id.startswith("web-")
        flow.start_worker(LEADFLOW_RULES=str(rules_file))

        decisions = flow.read(flow.settings.topic_decisions, at_least=2, timeout=40)
        mine = [d.json for d in decisions if d.json["lead_id"] == lead_id]
        assert len(mine) == 2  # the lead.upserted and the form_submit
        assert {d["event_id"] for d in mine} == {d["event_id"] for d in mine if d["event_id"].startswith("form-")}

        # the same form again (a double click), as JSON this time: the same lead, nothing decided twice
        status, again = post(url, form, as_json=True)
        assert (status, again) == (202, {"lead_id": lead_id})
        # a bot fills the hidden field: a 202 as if accepted, and nothing produced
        bot = {**form, "email": "bot@spam.example", "hp_name": "cheap pills"}
        status, _ = post(url, bot)
        assert status == 202
        # an invalid form: a problem per field, nothing produced
        status, refused = post(url, {"email": "not-an-email", "employees": "lots", "nickname": "x"})
        assert status == 400
        assert set(refused["errors"]) == {"email", "employees", "nickname"}

        # a later, different lead shows that the worker has caught up with everything posted before it
        status, other = post(url, {**form, "email": "grace@navy.example", "first_name": "Grace"})
        assert status == 202
        decisions = flow.read(flow.settings.topic_decisions, at_least=4, timeout=40)
        by_lead = [d.json["lead_id"] for d in decisions]
        assert by_lead.count(lead_id) == 2
        assert by_lead.count(other["lead_id"]) == 2
        leads = flow.read(flow.settings.topic_leads, at_least=6)
        assert len(leads) == 6  # 2 + the double submit's 2 (applied once) + Grace's 2; not the bot, not the 400
        assert all(b"spam.example" not in r.value and b"not-an-email" not in r.value for r in leads)
        flow.wait_metric("leadflow_duplicate_events_total", 2)  # the double submit, recognised as a replay

        outcomes = requests_by_outcome(url)
        assert outcomes["accepted"] == 3
        assert outcomes["honeypot"] == 1
        assert outcomes["invalid"] == 1


def test_the_service_refuses_what_it_must_and_promises_nothing_without_the_broker(tmp_path: Path) -> None:
    env = {
        "LEADFLOW_BROKER_URL": f"127.0.0.1:{free_port()}",  # nothing listens there
        "LEADFLOW_INTAKE_SECRET": "s3cret",
        "LEADFLOW_INTAKE_ALLOWED_ORIGINS": "https://www.example.com",
        "LEADFLOW_INTAKE_BURST": "7",
        "LEADFLOW_INTAKE_RATE": "0.01",
        "LEADFLOW_INTAKE_SEND_TIMEOUT": "2",
        "LEADFLOW_INTAKE_MAX_BODY_BYTES": "2048",
    }
    ok = {"X-Leadflow-Secret": "s3cret", "Origin": "https://www.example.com"}
    form = {"email": "ada@engines.example"}
    with intake(env, tmp_path / "intake.log") as url:
        assert post(url, form, headers={"Origin": "https://www.example.com"})[0] == 401
        assert post(url, form, headers={**ok, "X-Leadflow-Secret": "guess"})[0] == 401
        assert post(url, form, headers={**ok, "Origin": "https://evil.example"})[0] == 403
        status, answer = post(url, {**form, "description": "x" * 5000}, headers=ok)
        assert status == 413, answer
        # the same without a Content-Length (chunked): cut off at the limit, not read to the end
        connection = http.client.HTTPConnection(urllib.parse.urlsplit(url).netloc, timeout=10)
        chunks = iter([b"email=ada%40engines.example&description=", *[b"x" * 1000] * 50])
        connection.request("POST", "/leads", body=chunks, headers={**ok, "Content-Type": FORM}, encode_chunked=True)
        assert connection.getresponse().status == 413
        connection.close()
        status, answer = post(url, form, headers=ok)  # valid, but the broker cannot acknowledge it
        assert status == 503, answer
        assert "retry" in answer["error"]

        preflight = urllib.request.Request(  # noqa: S310  # the http://127.0.0.1 service under test
            f"{url}/leads",
            method="OPTIONS",
            headers={"Origin": "https://www.example.com", "Access-Control-Request-Method": "POST"},
        )
        with urllib.request.urlopen(preflight, timeout=5) as response:  # noqa: S310  # the http://127.0.0.1 service under test
            assert response.headers["Access-Control-Allow-Origin"] == "https://www.example.com"

        # the 6 posts so far took 6 of this address's 7 tokens (refused or not: a secret is not guessed faster)
        statuses = [post(url, form, headers=ok)[0] for _ in range(2)]
        assert statuses == [503, 429]
        outcomes = requests_by_outcome(url)
        assert outcomes["accepted"] == 0
        assert outcomes["unavailable"] == 2
        assert outcomes["rate_limited"] == 1
        assert outcomes["too_large"] == 2
        assert outcomes["unauthorized"] == 2
        assert outcomes["forbidden"] == 1


def test_a_broker_that_goes_away_gets_503_and_acknowledged_leads_survive_its_return(tmp_path: Path) -> None:
    from kafka import KafkaConsumer

    from worker.tools.broker import start_broker

    data = tmp_path / "broker-data"
    broker = start_broker(data_dir=data)
    topic = f"leads-{tmp_path.name[-20:]}"
    env = {"LEADFLOW_BROKER_URL": broker.url, "LEADFLOW_TOPIC_LEADS": topic, "LEADFLOW_INTAKE_SEND_TIMEOUT": "3"}
    try:
        with intake(env, tmp_path / "intake.log") as url:
            status, first = post(url, {"email": "ada@engines.example"})
            assert status == 202, first
            broker.stop()
            status, answer = post(url, {"email": "grace@navy.example"})
            assert status == 503, answer
            broker = start_broker(broker.port, data_dir=data)
            deadline = time.monotonic() + 30
            while (status := post(url, {"email": "grace@navy.example"})[0]) == 503 and time.monotonic() < deadline:
                time.sleep(0.5)  # the sender's retry, as a site's backend or the example page would
            assert status == 202
        consumer = KafkaConsumer(
            topic, bootstrap_servers=broker.url.removeprefix("kafka://"), auto_offset_reset="earliest"
        )
        emails: set[str] = set()
        deadline = time.monotonic() + 20
        while len(emails) < 2 and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                emails.update(orjson.loads(r.value)["lead"]["email"] for r in records if b"lead.upserted" in r.value)
        consumer.close()
        assert emails == {"ada@engines.example", "grace@navy.example"}  # the first survived the broker's restart
    finally:
        broker.stop()
