"""The Webhooks page: subscriptions added and removed through CSRF-protected forms, the secret shown once, bad input
refused with a 400 that keeps what was typed, and the newest deliveries with their attempts and last answer."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import Any

import redis
from flask import Flask
from flask.testing import FlaskClient

from core import webhook_outbox, webhooks
from core.orm import Ticket, WebhookDelivery, WebhookSubscription, utcnow
from core.webhook_queue import DELIVER_WEBHOOK_TASK, WEBHOOK_QUEUE
from tests.support.agents import csrf_token, fetch, post_form, visible_text
from tests.support.backends import both_backends

PAGE = "/agent/webhooks"


def test_only_signed_in_agents_see_the_page_and_it_is_in_the_top_bar(client: FlaskClient,
                                                                     signed_in: FlaskClient) -> None:
    assert client.application.test_client().get(PAGE).status_code == 302  # to the sign-in page
    page = signed_in.get(PAGE)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f'href="{PAGE}"' in html
    assert "No webhooks yet." in visible_text(html)
    assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")


@both_backends
def test_adding_shows_the_secret_once_and_removing_drops_the_subscription(app: Flask,
                                                                          signed_in: FlaskClient) -> None:
    added = signed_in.post(PAGE, data={"csrf_token": csrf_token(signed_in, PAGE),
                                       "url": "https://helpdesk.example.com/hooks/furiwake",
                                       "events": ["ticket.created", "ticket.resolved"], "description": "Zendesk"})
    assert added.status_code == 201, added.get_data(as_text=True)
    [stored] = fetch(app, WebhookSubscription)
    assert (stored.url, stored.events, stored.description) == (
        "https://helpdesk.example.com/hooks/furiwake", "ticket.created,ticket.resolved", "Zendesk")
    match = re.search(r"data-secret>([0-9a-f]{64})<", added.get_data(as_text=True))
    assert match and match.group(1) == stored.secret
    later = signed_in.get(PAGE).get_data(as_text=True)
    assert stored.secret not in later  # shown once
    assert "https://helpdesk.example.com/hooks/furiwake" in later and "ticket.created, ticket.resolved" in later

    removed = post_form(signed_in, f"{PAGE}/{stored.id}/remove", PAGE)
    assert removed.status_code == 303 and removed.headers["Location"] == PAGE
    assert fetch(app, WebhookSubscription) == []
    assert "removed" in visible_text(signed_in.get(PAGE).get_data(as_text=True))
    assert post_form(signed_in, f"{PAGE}/{stored.id}/remove", PAGE).status_code == 303  # twice: no error


def test_bad_input_is_a_400_that_keeps_the_form_and_stores_nothing(app: Flask, signed_in: FlaskClient) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"url": "ftp://example.com/x", "events": ["ticket.created"]}, "http:// or https://"),
        ({"url": "https://example.com/x"}, "at least one event"),
        ({"url": "https://example.com/x", "events": ["ticket.deleted"]}, "unknown event"),
    ]
    for data, message in cases:
        response = signed_in.post(PAGE, data={"csrf_token": csrf_token(signed_in, PAGE), **data})
        assert response.status_code == 400
        html = response.get_data(as_text=True)
        assert message in html
        assert f'value="{data["url"]}"' in html  # what was typed is kept
    assert fetch(app, WebhookSubscription) == []
    assert signed_in.post(PAGE, data={"url": "https://example.com/x", "events": ["ticket.created"]}).status_code == 400
    assert fetch(app, WebhookSubscription) == []  # no CSRF token: refused


def test_deliveries_are_listed_with_attempts_and_the_last_answer(app: Flask, signed_in: FlaskClient,
                                                                 add_ticket: Callable[..., Ticket]) -> None:
    ticket: Ticket = add_ticket()
    runtime = app.extensions["furiwake"]
    with runtime.unit_of_work() as session:
        webhooks.add_subscription(session, "https://helpdesk.example.com/hooks", ["ticket.resolved"])
    with runtime.unit_of_work() as session:
        [delivery_id] = webhooks.emit(session, webhooks.TICKET_RESOLVED, ticket)
    with runtime.unit_of_work() as session:
        claimed = webhook_outbox.claim(session, delivery_id, webhook_outbox.DEFAULT_POLICY, utcnow(), 60)
        assert claimed is not None
    with runtime.unit_of_work() as session:
        webhook_outbox.note_error(session, delivery_id, "attempt 1: HTTP 503", 503)
    html = signed_in.get(PAGE).get_data(as_text=True)
    row = html[html.index(f'data-delivery="{delivery_id}"'):]
    row = visible_text(row[:row.index("</tr>")])
    assert "ticket.resolved" in row and ticket.reference in row and "pending" in row
    assert "HTTP 503" in row and "attempt 1: HTTP 503" in row
    assert f'href="/agent/tickets/{ticket.id}"' in html


def _published(broker: redis.Redis) -> list[int]:
    """The delivery ids of the deliver_webhook messages waiting on the broker's `mail` queue."""
    ids = []
    for raw in broker.lrange(WEBHOOK_QUEUE, 0, -1):
        message = json.loads(raw)
        if message["headers"]["task"] == DELIVER_WEBHOOK_TASK:
            ids += json.loads(base64.b64decode(message["body"]))[0]
    return ids


def test_requests_publish_the_deliveries_they_emit_once_committed(app: Flask, client: FlaskClient,
                                                                  bearer: dict[str, str],
                                                                  broker: redis.Redis) -> None:
    """Through the real intake and the agents' JSON API, with the real broker: ticket.created and ticket.resolved
    are stored with the change and published by the request that made it."""
    with app.extensions["furiwake"].unit_of_work() as session:
        webhooks.add_subscription(session, "https://helpdesk.example.com/hooks", ["ticket.created", "ticket.resolved"])
    created = client.post("/api/v1/tickets", json={"body": "ログインできません"})
    assert created.status_code == 202, created.get_data(as_text=True)
    ticket_id = created.get_json()["id"]
    [after_intake] = fetch(app, WebhookDelivery)
    assert (after_intake.event, str(after_intake.ticket_id)) == ("ticket.created", ticket_id)
    assert _published(broker) == [after_intake.id]
    assert client.post(f"/api/v1/tickets/{ticket_id}/resolve", headers=bearer).status_code == 200
    assert client.post(f"/api/v1/tickets/{ticket_id}/resolve", headers=bearer).status_code == 200  # no change
    deliveries = fetch(app, WebhookDelivery)
    assert [d.event for d in deliveries] == ["ticket.created", "ticket.resolved"]
    assert sorted(_published(broker)) == [d.id for d in deliveries]
