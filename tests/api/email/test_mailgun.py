"""POST /webhooks/email/mailgun: signed route forwards; bad, stale and replayed signatures get 406 and store nothing."""

from __future__ import annotations

import time

import pytest
from flask import Flask

from tests.support.api import assert_problem, count_tickets, queued_ticket_ids, stored_tickets
from tests.support.backends import both_backends
from tests.support.email_webhooks import fixture_bytes, fixture_json, inbound_log, mailgun_sign, nonces

URL = "/webhooks/email/mailgun"
BODY = (
    "サポートチーム御中\n\nパスワードを変更したのですが、新しいパスワードでログインできなくなりました。\n"
    "二段階認証のコードも届きません。アカウントを確認していただけますか。\n\nよろしくお願いします。"
)


def forward() -> dict[str, str]:
    return fixture_json("mailgun_forward.json")


@both_backends
def test_signed_forward_becomes_a_ticket(email_app: Flask, email_client, broker) -> None:
    response = email_client.post(URL, data=mailgun_sign(forward()))  # urlencoded, as Mailgun sends without files
    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.get_json()
    assert answer == {"id": answer["id"], "duplicate": False}
    [ticket] = stored_tickets(email_app)
    assert ticket.body == BODY  # our stripping of body-plain: no rule-line signature, no quote
    assert (ticket.subject, ticket.customer_name, ticket.customer_email) == (
        "Re: ログインできません", "中村 健", "ken.nakamura@example.org")  # fmt: skip
    assert queued_ticket_ids(broker) == [answer["id"]]
    [entry] = inbound_log(email_app)
    assert (entry.provider, entry.outcome, entry.ticket_id) == ("mailgun", "accepted", ticket.id)


def test_multipart_forward_with_attachments(email_app: Flask, email_client) -> None:
    fields = {**forward(), "attachment-count": "2"}
    files = {"attachment-1": (_file(b"%PDF-1.4"), "a.pdf"), "attachment-2": (_file(b"x"), "b.txt")}
    data = {**mailgun_sign(fields), **files}
    response = email_client.post(URL, data=data, content_type="multipart/form-data")
    assert response.status_code == 200
    assert inbound_log(email_app)[0].attachments == 2


@both_backends
def test_redelivery_with_a_new_signature_is_a_duplicate(email_app: Flask, email_client) -> None:
    first = email_client.post(URL, data=mailgun_sign(forward())).get_json()
    again = email_client.post(URL, data=mailgun_sign(forward()))
    assert (again.status_code, again.get_json()) == (200, {"id": first["id"], "duplicate": True})
    assert count_tickets(email_app) == 1


@both_backends
def test_replayed_token_is_refused_with_406(email_app: Flask, email_client) -> None:
    signed = mailgun_sign(forward())
    assert email_client.post(URL, data=signed).status_code == 200
    problem = assert_problem(email_client.post(URL, data=signed), 406)
    assert "already used" in problem["detail"]
    assert [e.outcome for e in inbound_log(email_app)] == ["accepted"]  # the replay is not logged as a mail


@pytest.mark.parametrize(("case", "change"), [
    ("wrong key", lambda f: mailgun_sign(f, key="key-someone-else")),
    ("tampered token", lambda f: {**mailgun_sign(f), "token": "x" * 50}),
    ("no signature", lambda f: {k: v for k, v in mailgun_sign(f).items() if k != "signature"}),
    ("odd timestamp", lambda f: {**mailgun_sign(f), "timestamp": "²"}),
    ("not hex", lambda f: {**mailgun_sign(f), "signature": "日本語"}),
    ("stale", lambda f: mailgun_sign(f, timestamp=int(time.time()) - 301)),
    ("from the future", lambda f: mailgun_sign(f, timestamp=int(time.time()) + 301)),
])  # fmt: skip
def test_bad_signatures_get_406_and_store_nothing(email_app: Flask, email_client, case, change) -> None:
    response = email_client.post(URL, data=change(forward()))
    problem = assert_problem(response, 406)
    assert problem["type"] == "urn:furiwake:problem:webhook-signature", case
    assert count_tickets(email_app) == 0
    assert inbound_log(email_app) == [] and nonces(email_app) == []


def test_timestamps_within_five_minutes_pass(email_app: Flask, email_client) -> None:
    assert email_client.post(URL, data=mailgun_sign(forward(), timestamp=int(time.time()) - 290)).status_code == 200


def test_old_nonces_are_pruned(email_app: Flask, email_client) -> None:
    from datetime import timedelta

    from core.orm import WebhookNonce, utcnow

    with email_app.extensions["furiwake"].sessions.begin() as session:
        session.add(WebhookNonce(token="old", seen_at=utcnow() - timedelta(hours=1)))
    email_client.post(URL, data=mailgun_sign(forward()))
    assert "old" not in nonces(email_app) and len(nonces(email_app)) == 1


def test_signed_but_empty_mail_is_rejected_with_406_and_logged(email_app: Flask, email_client) -> None:
    fields = {**forward(), "body-plain": "", "stripped-text": "", "body-html": ""}
    problem = assert_problem(email_client.post(URL, data=mailgun_sign(fields)), 406)
    assert problem["type"] == "urn:furiwake:problem:email-rejected" and problem["detail"] == "no body text"
    [entry] = inbound_log(email_app)
    assert (entry.provider, entry.outcome, entry.reason) == ("mailgun", "rejected", "no body text")


def test_mime_route_posts_body_mime(email_app: Flask, email_client) -> None:
    fields = {"recipient": "support@furiwake.example", "sender": "suzuki@example.ne.jp",
              "body-mime": fixture_bytes("euc_jp.eml").decode("latin-1")}  # fmt: skip
    data = {k: (v.encode("latin-1") if k == "body-mime" else v) for k, v in mailgun_sign(fields).items()}
    response = email_client.post(f"{URL}/mime", data={k: _file(v) if isinstance(v, bytes) else v
                                                      for k, v in data.items()}, content_type="multipart/form-data")
    assert response.status_code == 200, response.get_data(as_text=True)
    [ticket] = stored_tickets(email_app)
    assert ticket.subject == "ログインできません" and "アカウントのロックを解除" in ticket.body
    assert "＞" not in ticket.body and "鈴木 一郎" not in ticket.body


def test_key_not_configured_refuses_with_503(make_app) -> None:
    app = make_app(mailgun_signing_key="")
    response = app.test_client().post(URL, data=mailgun_sign(forward()))
    problem = assert_problem(response, 503)
    assert "MAILGUN_SIGNING_KEY" in problem["detail"]
    assert count_tickets(app) == 0


def test_database_failure_lets_mailguns_retry_through(email_app: Flask, email_client, monkeypatch) -> None:
    """A 5xx is what makes Mailgun retry; its token must not then count as a replay."""
    from api.email import intake

    def broken(*_args, **_kwargs):
        raise RuntimeError("database went away")

    signed = mailgun_sign(forward())
    monkeypatch.setattr(intake, "store_queued", broken)
    email_app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production
    assert "database went away" not in assert_problem(email_client.post(URL, data=signed), 500)["detail"]
    assert nonces(email_app) == []
    monkeypatch.undo()
    assert email_client.post(URL, data=signed).status_code == 200


def _file(data: bytes):
    import io

    return io.BytesIO(data)

