"""POST /api/v1/tickets/batch against a real database (SQLite and PostgreSQL) and a real Redis broker: many tickets
in one request, all stored or none, each queued as a single one would be."""

from __future__ import annotations

import json

import pytest
from flask import Flask

from api.schemas import MAX_BATCH_TICKETS
from tests.support.api import DEAD_BROKER_URL, assert_problem, count_tickets, queued_ticket_ids, stored_tickets
from tests.support.backends import both_backends

BATCH = [
    {"body": "パスワードを忘れました", "subject": "ログイン", "customer_email": "taro@example.jp"},
    {"body": "二重に請求されています", "customer_name": "山田花子"},
    {"body": "The parcel never arrived."},
]


@both_backends
def test_a_batch_stores_and_queues_every_ticket_in_order(app: Flask, client, broker) -> None:
    response = client.post("/api/v1/tickets/batch", json={"tickets": BATCH})
    assert response.status_code == 202, response.get_data(as_text=True)
    items = response.get_json()["items"]
    assert [set(item) for item in items] == [{"id", "reference", "status", "url"}] * 3
    assert [item["status"] for item in items] == ["queued"] * 3
    assert len({item["id"] for item in items}) == 3 and len({item["reference"] for item in items}) == 3
    assert all(item["url"] == f"/api/v1/tickets/{item['id']}" for item in items)

    stored = {str(ticket.id): ticket for ticket in stored_tickets(app)}
    assert [stored[item["id"]].body for item in items] == [ticket["body"] for ticket in BATCH]
    first = stored[items[0]["id"]]
    assert (first.channel, first.subject, first.customer_email) == ("api", "ログイン", "taro@example.jp")
    assert stored[items[1]["id"]].customer_name == "山田花子"
    assert all(ticket.status == "queued" and ticket.queued_at is not None for ticket in stored.values())
    assert sorted(queued_ticket_ids(broker)) == sorted(item["id"] for item in items)


@both_backends
def test_one_bad_ticket_refuses_the_whole_batch_and_names_it(app: Flask, client, broker) -> None:
    batch = [BATCH[0], {"body": "   "}, BATCH[2]]
    problem = assert_problem(client.post("/api/v1/tickets/batch", json={"tickets": batch}), 422, "tickets")
    assert problem["errors"]["tickets"] == {"1": {"body": ["Must not be blank."]}}
    assert "tickets.1.body: Must not be blank." in problem["detail"]
    assert count_tickets(app) == 0 and queued_ticket_ids(broker) == []


@pytest.mark.parametrize(
    "payload",
    [{"tickets": []}, {"tickets": [{"body": "x"}] * (MAX_BATCH_TICKETS + 1)}, {}, {"tickets": "x"},
     {"tickets": [BATCH[0]], "extra": 1}, {"tickets": [{"body": "x", "channel": "email"}]}],
    ids=["empty", "too many", "missing", "not a list", "unknown field", "unknown ticket field"],
)  # fmt: skip
def test_a_malformed_batch_is_a_422_and_stores_nothing(app: Flask, client, payload) -> None:
    assert_problem(client.post("/api/v1/tickets/batch", json=payload), 422)
    assert count_tickets(app) == 0


@both_backends
def test_a_repeated_batch_with_its_idempotency_key_returns_the_same_tickets(app: Flask, client, broker) -> None:
    headers = {"Idempotency-Key": "import-2026-12-05-" + "x" * 180}  # as long as a key may be
    first = client.post("/api/v1/tickets/batch", json={"tickets": BATCH}, headers=headers)
    again = client.post("/api/v1/tickets/batch", json={"tickets": BATCH}, headers=headers)
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.get_json() == first.get_json()
    assert count_tickets(app) == 3
    assert sorted(queued_ticket_ids(broker)) == sorted(item["id"] for item in first.get_json()["items"])

    changed = [BATCH[0], {"body": "二重に請求されています。至急返金してください"}, BATCH[2]]
    problem = assert_problem(client.post("/api/v1/tickets/batch", json={"tickets": changed}, headers=headers), 422,
                             "Idempotency-Key")
    assert problem["type"] == "urn:furiwake:problem:idempotency-key-reused"
    assert count_tickets(app) == 3  # nothing of the refused request was kept, not even its unchanged tickets


def test_the_batch_key_is_not_the_single_tickets_key(app: Flask, client) -> None:
    """The same Idempotency-Key on the single endpoint and on a batch names two different requests."""
    headers = {"Idempotency-Key": "k-1"}
    single = client.post("/api/v1/tickets", json=BATCH[0], headers=headers)
    batch = client.post("/api/v1/tickets/batch", json={"tickets": [BATCH[0]]}, headers=headers)
    assert (single.status_code, batch.status_code) == (202, 202)
    assert batch.get_json()["items"][0]["id"] != single.get_json()["id"] and count_tickets(app) == 2


@both_backends
def test_broker_down_still_accepts_the_batch(make_app, caplog) -> None:
    app = make_app(broker_url=DEAD_BROKER_URL)
    response = app.test_client().post("/api/v1/tickets/batch", json={"tickets": BATCH})
    assert response.status_code == 202
    assert [item["status"] for item in response.get_json()["items"]] == ["received"] * 3
    assert [(ticket.status, ticket.queued_at) for ticket in stored_tickets(app)] == [("received", None)] * 3
    assert "not enqueued" in caplog.text


def test_each_ticket_of_a_batch_counts_against_the_intake_limit(make_app) -> None:
    client = make_app(rate_limit_intake="4/minute").test_client()
    address = {"REMOTE_ADDR": "192.0.2.9"}
    assert client.post("/api/v1/tickets/batch", json={"tickets": BATCH}, environ_base=address).status_code == 202
    assert client.post("/api/v1/tickets", json=BATCH[0], environ_base=address).status_code == 202  # the 4th
    refused = client.post("/api/v1/tickets/batch", json={"tickets": BATCH[:1]}, environ_base=address)
    assert_problem(refused, 429)
    assert int(refused.headers["Retry-After"]) >= 1
    assert assert_problem(client.post("/api/v1/tickets", json=BATCH[0], environ_base=address), 429)


def test_a_batch_too_large_or_not_a_batch_is_its_own_4xx_with_the_limit_on(make_app) -> None:
    """The limit reads the body to count its tickets; a body it cannot count must still get the parser's answer."""
    client = make_app(rate_limit_intake="4/minute").test_client()
    too_large = json.dumps({"tickets": [{"body": "あ" * 19000}] * 30})  # ~1.7 MB, over the 1 MB request limit
    assert_problem(client.post("/api/v1/tickets/batch", data=too_large, content_type="application/json"), 413)
    assert_problem(client.post("/api/v1/tickets/batch", data="not json", content_type="application/json"), 400)
    assert_problem(client.post("/api/v1/tickets/batch", data="x", content_type="text/plain"), 415)
    assert_problem(client.post("/api/v1/tickets/batch", json=[{"body": "x"}]), 422)
