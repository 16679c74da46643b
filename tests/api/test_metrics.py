"""GET /metrics in-process (one process: the default registry): what intake, rate limits and re-routes count shows
up, the queue depth comes from the database, a database that is down leaves out only that gauge, and METRICS_TOKEN
guards the endpoint."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from core.orm import Ticket, utcnow
from tests.support.agents import make_agent
from tests.support.processes import free_port

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: FlaskClient, **headers: str) -> Samples:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    return parse(response.get_data(as_text=True))


def parse(text: str) -> Samples:
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def sample(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_a_posted_ticket_is_counted_and_waits_in_the_queue(app: Flask, client: FlaskClient) -> None:
    before = scrape(client)
    for body in ("パスワードを忘れました", "請求書を再発行してください"):
        assert client.post("/api/v1/tickets", json={"body": body}).status_code == 202
    key = {"Idempotency-Key": "metrics-repeat"}
    for _ in range(2):  # a client's retry is one ticket, counted once
        assert client.post("/api/v1/tickets", json={"body": "もう一度"}, headers=key).status_code in (200, 202)
    after = scrape(client)
    received = "furiwake_tickets_received_total"
    assert sample(after, received, channel="api") == sample(before, received, channel="api") + 3
    assert sample(after, "furiwake_queue_depth") == 3  # no worker here: all three are still queued


def test_a_database_that_is_down_leaves_out_only_the_queue_depth(make_app: Callable[..., Flask]) -> None:
    down = make_app(database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/test").test_client()
    response = down.get("/metrics")
    assert response.status_code == 200
    samples = parse(response.get_data(as_text=True))
    assert not any(name == "furiwake_queue_depth" for name, _ in samples)
    assert any(name == "furiwake_sweep_requeued_total" for name, _ in samples)


def test_a_rate_limit_refusal_is_counted_by_scope(make_app: Callable[..., Flask]) -> None:
    client = make_app(rate_limit_intake="1/minute").test_client()
    before = sample(scrape(client), "furiwake_rate_limited_total", scope="intake")
    assert client.post("/api/v1/tickets", json={"body": "一通目"}).status_code == 202
    assert client.post("/api/v1/tickets", json={"body": "二通目"}).status_code == 429
    assert client.get("/metrics").status_code == 200  # the endpoint itself is never limited
    assert sample(scrape(client), "furiwake_rate_limited_total", scope="intake") == before + 1


def test_an_agent_overruling_the_model_is_counted(app: Flask, client: FlaskClient) -> None:
    agent = make_agent(app)
    version = "20261203-000000-metrics"
    now = utcnow()
    tickets = [Ticket(channel="api", body="返金してください", status="routed", route="Account", attempts=1,
                      created_at=now - timedelta(minutes=5), routed_at=now, model_version=version, confidence=0.5,
                      score_account=0.5, score_payment=0.4, score_other=0.1) for _ in range(2)]
    with app.extensions["furiwake"].unit_of_work() as session:
        session.add_all(tickets)
    labels = {"from_route": "Account", "to_route": "Payment", "model_version": version}
    bearer = {"Authorization": f"Bearer {agent.token}"}
    before = sample(scrape(client), "furiwake_route_overrides_total", **labels)
    assert client.post(f"/api/v1/tickets/{tickets[0].id}/route", json={"route": "Payment"},
                       headers=bearer).status_code == 200
    assert client.post(f"/api/v1/tickets/{tickets[1].id}/route", json={"route": "Account"},
                       headers=bearer).status_code == 200
    after = scrape(client)
    assert sample(after, "furiwake_route_overrides_total", **labels) == before + 1  # a confirmation is no override
    confirmed = {**labels, "to_route": "Account"}
    assert ("furiwake_route_overrides_total", frozenset(confirmed.items())) not in after


def test_metrics_token_is_asked_for_when_set(make_app: Callable[..., Flask]) -> None:
    client = make_app(metrics_token="s3cret-scrape").test_client()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic czNjcmV0LXNjcmFwZQ=="}):
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 401
        assert response.mimetype == "application/problem+json"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    scrape(client, Authorization="Bearer s3cret-scrape")
