"""Every bad request gets an RFC 9457 problem naming what was wrong, stores nothing and enqueues nothing."""

from __future__ import annotations

import pytest
from flask import Flask

from tests.support.api import assert_problem, count_tickets, queued_ticket_ids
from tests.support.backends import both_backends

JSON = "application/json"

# (case, request keyword arguments, status, field named in `errors` or None)
BAD_REQUESTS = [
    ("missing body", {"json": {"subject": "件名だけ"}}, 422, "body"),
    ("empty body", {"json": {"body": ""}}, 422, "body"),
    ("whitespace-only body", {"json": {"body": " \n\t　"}}, 422, "body"),
    ("null body", {"json": {"body": None}}, 422, "body"),
    ("body too long", {"json": {"body": "あ" * 20_001}}, 422, "body"),
    ("unknown field", {"json": {"body": "質問", "priority": "high"}}, 422, "priority"),
    ("body not a string", {"json": {"body": 42}}, 422, "body"),
    ("subject not a string", {"json": {"body": "質問", "subject": ["a"]}}, 422, "subject"),
    ("subject too long", {"json": {"body": "質問", "subject": "s" * 501}}, 422, "subject"),
    ("invalid e-mail", {"json": {"body": "質問", "customer_email": "not-an-address"}}, 422, "customer_email"),
    ("NUL character", {"json": {"body": "質問\u0000"}}, 422, "body"),
    ("lone surrogate", {"data": '{"body": "\\ud800"}', "content_type": JSON}, 422, "body"),
    ("JSON array", {"json": ["body"]}, 422, "_schema"),
    ("idempotency key too long", {"json": {"body": "質問"}, "headers": {"Idempotency-Key": "k" * 201}}, 400,
     "Idempotency-Key"),
    ("idempotency key with spaces", {"json": {"body": "質問"}, "headers": {"Idempotency-Key": "a b"}}, 400,
     "Idempotency-Key"),
    ("text/plain", {"data": '{"body": "質問"}', "content_type": "text/plain"}, 415, None),
    ("form-encoded", {"data": {"body": "質問"}}, 415, None),
    ("no Content-Type", {"data": b'{"body": "x"}'}, 415, None),
    ("invalid JSON", {"data": '{"body": ', "content_type": JSON}, 400, None),
    ("empty JSON document", {"data": "", "content_type": JSON}, 400, None),
    ("invalid UTF-8", {"data": b'{"body": "\xff\xfe"}', "content_type": JSON}, 400, None),
    ("absurd nesting", {"data": "[" * 200_000, "content_type": JSON}, 400, None),
    ("request over 1 MB", {"data": '{"body": "' + "x" * 1_000_001 + '"}', "content_type": JSON}, 413, None),
]  # fmt: skip


@both_backends
@pytest.mark.parametrize(("kwargs", "status", "field"), [case[1:] for case in BAD_REQUESTS],
                         ids=[case[0] for case in BAD_REQUESTS])  # fmt: skip
def test_bad_ticket_is_refused_with_a_problem(app: Flask, client, broker, kwargs, status, field) -> None:
    problem = assert_problem(client.post("/api/v1/tickets", **kwargs), status, field)
    if field is not None:
        assert field in problem["detail"]
    assert count_tickets(app) == 0
    assert queued_ticket_ids(broker) == []


def test_body_limit_follows_the_setting(make_app) -> None:
    client = make_app(max_body_chars=10).test_client()
    assert client.post("/api/v1/tickets", json={"body": "0123456789"}).status_code == 202
    problem = assert_problem(client.post("/api/v1/tickets", json={"body": "0123456789A"}), 422, "body")
    assert "10 characters" in problem["detail"]


def test_unknown_path_under_api_is_a_404_problem(client) -> None:
    assert_problem(client.get("/api/v1/nothing-here"), 404)


def test_wrong_method_is_a_405_problem_with_allow(client) -> None:
    response = client.delete("/api/v1/tickets")
    assert_problem(response, 405)
    assert {"GET", "POST"} <= set(response.headers["Allow"].split(", "))
    assert_problem(client.post("/healthz"), 405)
    assert_problem(client.post("/readyz"), 405)


def test_unexpected_failure_is_a_500_problem_without_traceback(make_app, tmp_path, caplog) -> None:
    """A database without its tables: a server fault, logged with its traceback, answered without one."""
    app = make_app(database_url=f"sqlite:///{tmp_path / 'never-migrated.db'}")
    app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production; TESTING would re-raise into the test
    response = app.test_client().post("/api/v1/tickets", json={"body": "質問"})
    problem = assert_problem(response, 500)
    assert "tickets" not in problem["detail"]  # nothing of the SQL error leaks
    assert "no such table" in caplog.text
