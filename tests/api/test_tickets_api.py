"""POST/GET of /api/v1/tickets against a real database (SQLite and PostgreSQL) and a real Redis broker."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
from flask import Flask
from sqlalchemy import update

from core.orm import Ticket, utcnow
from tests.support.agents import make_agent
from tests.support.api import DEAD_BROKER_URL, assert_problem, count_tickets, queued_ticket_ids, stored_tickets
from tests.support.backends import both_backends

TICKET_FIELDS = {
    "id", "reference", "channel", "subject", "body", "customer_name", "customer_email", "status", "route",
    "confidence", "scores", "model_version", "fine_category", "fine_confidence", "rule_id", "rule_version",
    "model_route", "review_reason", "attempts", "last_error", "created_at", "queued_at", "routed_at",
}  # fmt: skip
PUBLIC_FIELDS = {"id", "reference", "status", "route", "created_at"}


@both_backends
def test_create_stores_enqueues_and_marks_queued(app: Flask, client, broker) -> None:
    response = client.post(
        "/api/v1/tickets",
        json={"body": "パスワードを忘れました", "subject": "ログイン", "customer_email": "taro@example.jp",
              "customer_name": "山田太郎"},
    )  # fmt: skip
    assert response.status_code == 202
    created = response.get_json()
    assert set(created) == {"id", "reference", "status", "url"}
    assert created["status"] == "queued"
    assert created["reference"].startswith("T-")
    assert response.headers["Location"] == created["url"] == f"/api/v1/tickets/{created['id']}"

    [ticket] = stored_tickets(app)
    assert str(ticket.id) == created["id"]
    assert (ticket.channel, ticket.status, ticket.body) == ("api", "queued", "パスワードを忘れました")
    assert (ticket.subject, ticket.customer_email, ticket.customer_name) == ("ログイン", "taro@example.jp", "山田太郎")
    assert ticket.queued_at is not None and ticket.queued_at >= ticket.created_at
    assert queued_ticket_ids(broker) == [created["id"]]


@both_backends
def test_get_with_an_agents_token_returns_every_field_in_iso_utc(app: Flask, client) -> None:
    bearer = {"Authorization": f"Bearer {make_agent(app).token}"}
    created = client.post("/api/v1/tickets", json={"body": "請求書を再発行してください"}).get_json()
    response = client.get(created["url"], headers=bearer)
    assert "no-store" in response.headers["Cache-Control"] and "Authorization" in response.headers["Vary"]
    fetched = response.get_json()
    assert set(fetched) == TICKET_FIELDS
    assert fetched["id"] == created["id"] and fetched["status"] == "queued" and fetched["channel"] == "api"
    assert fetched["route"] is None and fetched["scores"] is None and fetched["routed_at"] is None
    assert fetched["attempts"] == 0
    created_at = datetime.fromisoformat(fetched["created_at"])
    assert created_at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]

    # What the worker writes once it has classified the ticket.
    with app.extensions["furiwake"].sessions.begin() as session:
        session.execute(
            update(Ticket)
            .where(Ticket.id == uuid.UUID(created["id"]))
            .values(status="routed", route="Payment", confidence=0.91, score_account=0.04, score_payment=0.91,
                    score_other=0.05, model_version="v7", routed_at=utcnow())
        )  # fmt: skip
    fetched = client.get(created["url"], headers=bearer).get_json()
    assert (fetched["status"], fetched["route"], fetched["confidence"]) == ("routed", "Payment", 0.91)
    assert fetched["scores"] == {"Account": 0.04, "Payment": 0.91, "Other": 0.05}
    assert fetched["model_version"] == "v7"
    assert datetime.fromisoformat(fetched["routed_at"]).utcoffset().total_seconds() == 0  # type: ignore[union-attr]


@both_backends
def test_get_without_a_token_shows_only_the_public_view(app: Flask, client) -> None:
    created = client.post(
        "/api/v1/tickets", json={"body": "カードの請求が二重です", "subject": "二重請求",
                                 "customer_email": "taro@example.jp", "customer_name": "山田太郎"},
    ).get_json()  # fmt: skip
    with app.extensions["furiwake"].sessions.begin() as session:
        session.execute(
            update(Ticket).where(Ticket.id == uuid.UUID(created["id"]))
            .values(status="routed", route="Payment", confidence=0.91, score_payment=0.91, model_version="v7")
        )  # fmt: skip
    response = client.get(created["url"])
    fetched = response.get_json()
    assert set(fetched) == PUBLIC_FIELDS
    assert fetched == {"id": created["id"], "reference": created["reference"], "status": "routed",
                       "route": "Payment", "created_at": fetched["created_at"]}  # fmt: skip
    text = response.get_data(as_text=True)
    assert "taro@example.jp" not in text and "二重" not in text and "山田" not in text and "0.91" not in text
    assert "Authorization" in response.headers["Vary"]


@pytest.mark.parametrize("authorization", ["Bearer not-a-token", "Basic aW5ib3VuZDpz", "Bearer"])
def test_get_with_bad_credentials_is_a_401_not_the_public_view(client, authorization: str) -> None:
    created = client.post("/api/v1/tickets", json={"body": "質問"}).get_json()
    problem = assert_problem(client.get(created["url"], headers={"Authorization": authorization}), 401)
    assert "body" not in problem and "質問" not in str(problem)


@both_backends
def test_repeated_idempotency_key_returns_the_same_ticket(app: Flask, client, broker) -> None:
    headers = {"Idempotency-Key": "order-4711-retry"}
    first = client.post("/api/v1/tickets", json={"body": "返金はいつですか"}, headers=headers)
    again = client.post("/api/v1/tickets", json={"body": "返金はいつですか"}, headers=headers)
    assert first.status_code == 202
    assert again.status_code == 200
    assert again.get_json() == first.get_json()
    assert again.headers["Location"] == first.headers["Location"]
    assert count_tickets(app) == 1
    assert queued_ticket_ids(broker) == [first.get_json()["id"]]


@both_backends
@pytest.mark.parametrize(
    "changed",
    [{"body": "返金はまだですか"}, {"body": "返金はいつですか", "subject": "返金"},
     {"body": "返金はいつですか", "customer_email": "hanako@example.jp"}],
    ids=["body", "subject added", "e-mail added"],
)  # fmt: skip
def test_idempotency_key_reused_with_a_different_request_is_a_422(app: Flask, client, broker, changed) -> None:
    headers = {"Idempotency-Key": "order-4711-retry"}
    first = client.post("/api/v1/tickets", json={"body": "返金はいつですか"}, headers=headers)
    assert first.status_code == 202
    problem = assert_problem(client.post("/api/v1/tickets", json=changed, headers=headers), 422, "Idempotency-Key")
    assert "order-4711-retry" in problem["detail"]
    assert problem["type"] == "urn:furiwake:problem:idempotency-key-reused"
    [ticket] = stored_tickets(app)
    assert ticket.body == "返金はいつですか" and ticket.subject is None and ticket.customer_email is None
    assert queued_ticket_ids(broker) == [first.get_json()["id"]]
    # The original request, repeated, still gets its ticket.
    again = client.post("/api/v1/tickets", json={"body": "返金はいつですか"}, headers=headers)
    assert (again.status_code, again.get_json()) == (200, first.get_json())


def test_different_idempotency_keys_make_different_tickets(app: Flask, client) -> None:
    ids = {
        client.post("/api/v1/tickets", json={"body": "同じ内容"}, headers={"Idempotency-Key": key}).get_json()["id"]
        for key in ("k-1", "k-2")
    }
    assert len(ids) == 2 and count_tickets(app) == 2


@both_backends
def test_broker_down_still_accepts_the_ticket(make_app, caplog) -> None:
    app = make_app(broker_url=DEAD_BROKER_URL)
    response = app.test_client().post("/api/v1/tickets", json={"body": "カードが使えません"})
    assert response.status_code == 202
    assert response.get_json()["status"] == "received"
    [ticket] = stored_tickets(app)
    assert (ticket.status, ticket.queued_at) == ("received", None)
    assert "not enqueued" in caplog.text


def test_unknown_or_malformed_id_is_a_404_problem(client) -> None:
    assert_problem(client.get(f"/api/v1/tickets/{uuid.uuid4()}"), 404)
    assert_problem(client.get("/api/v1/tickets/not-a-uuid"), 404)
