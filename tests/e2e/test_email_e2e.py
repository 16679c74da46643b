"""Each provider's fixture, posted to a real gunicorn, routed by a real Celery worker process: the routed ticket
holds the customer's words, without the quoted message or the signature."""

from __future__ import annotations

import uuid

import pytest
import requests
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from core.orm import InboundEmail, Ticket
from tests.support.email_webhooks import (
    MAILGUN_KEY,
    PASSWORD,
    SENDGRID_FORM,
    USER,
    fixture_bytes,
    fixture_json,
    mailgun_sign,
)
from tests.support.processes import service_env, start_api, start_worker, wait_until

AUTH = (USER.encode(), PASSWORD.encode())  # UTF-8 (requests would encode str as Latin-1)
# What a quote or a signature leaves behind if it was not removed.
LEFTOVERS = (
    "> ", "＞", "\n--", "TEL", "━", "―", "差出人", "Original Message", "書きました", "wrote:", "Mail:", "iPhone",
)  # fmt: skip


def _deliveries(base: str) -> list[tuple[str, requests.Response]]:
    hook = f"{base}/webhooks/email"
    rfc822 = {"Content-Type": "message/rfc822"}
    return [
        ("sendgrid", requests.post(f"{hook}/sendgrid", data=fixture_bytes("sendgrid_parsed.form"), auth=AUTH,
                                   headers={"Content-Type": SENDGRID_FORM}, timeout=10)),
        ("mailgun", requests.post(f"{hook}/mailgun", data=mailgun_sign(fixture_json("mailgun_forward.json")),
                                  timeout=10)),
        ("postmark", requests.post(f"{hook}/postmark", json=fixture_json("postmark_inbound.json"), auth=AUTH,
                                   timeout=10)),
        ("sendgrid raw", requests.post(f"{hook}/sendgrid", data=fixture_bytes("sendgrid_raw.form"), auth=AUTH,
                                       headers={"Content-Type": SENDGRID_FORM}, timeout=10)),
        *[(f"raw {name}", requests.post(f"{hook}/raw", data=fixture_bytes(name), auth=AUTH, headers=rfc822,
                                        timeout=10))
          for name in ("iso2022jp_reply.eml", "euc_jp.eml", "html_only.eml", "multipart_base64_qp.eml",
                       "shift_jis_outlook.eml")],
    ]  # fmt: skip


@pytest.mark.parametrize("deployment", ["embedded", pytest.param("postgres", marks=[pytest.mark.postgres,
                                                                                    pytest.mark.redis])])
def test_every_provider_becomes_a_routed_ticket_of_customer_words(
    request, deployment, processes, trained_model_dir, tmp_path
) -> None:
    if deployment == "embedded":
        from core.migrate import upgrade

        database_url, broker_url = f"sqlite:///{tmp_path / 'var' / 'furiwake.db'}", "filesystem://"
        (tmp_path / "var").mkdir(exist_ok=True)
        upgrade(database_url)
    else:
        database_url, broker_url = request.getfixturevalue("postgres_url"), request.getfixturevalue("redis_url")
    env = service_env(database_url, broker_url, trained_model_dir, tmp_path, EMAIL_WEBHOOK_USER=USER,
                      EMAIL_WEBHOOK_PASSWORD=PASSWORD, MAILGUN_SIGNING_KEY=MAILGUN_KEY)  # fmt: skip
    start_worker(processes, env, embedded=deployment == "embedded")
    base = start_api(processes, env)

    answers = {}
    for what, response in _deliveries(base):
        assert response.status_code == 200, (what, response.text)
        answers[what] = response.json()
    # The raw Shift_JIS mail is the one SendGrid already delivered in raw mode, and the raw ISO-2022-JP mail the
    # one it delivered parsed: same Message-ID, same recipient.
    assert answers["raw shift_jis_outlook.eml"] == {"id": answers["sendgrid raw"]["id"], "duplicate": True}
    assert answers["raw iso2022jp_reply.eml"] == {"id": answers["sendgrid"]["id"], "duplicate": True}
    ids = {uuid.UUID(answer["id"]) for answer in answers.values()}
    assert len(ids) == 7

    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    tickets: dict[uuid.UUID, Ticket] = {}

    def routed() -> bool:
        with Session(engine) as session:
            rows = list(session.scalars(select(Ticket).where(Ticket.id.in_(ids))))
        tickets.update({t.id: t for t in rows})
        return len(rows) == len(ids) and all(t.status in ("routed", "needs_review") for t in rows)

    try:
        wait_until(routed, 120, processes, "e-mail tickets routed")
        for ticket in tickets.values():
            assert ticket.channel == "email" and ticket.route in ("Account", "Payment", "Other")
            assert ticket.model_version and ticket.routed_at
            assert ticket.customer_email and ticket.subject
            for leftover in LEFTOVERS:
                assert leftover not in ticket.body, (leftover, ticket.body)
        by_answer = {what: tickets[uuid.UUID(answer["id"])] for what, answer in answers.items()}
        assert "二重に請求されています" in by_answer["sendgrid"].body
        assert "新しいパスワードでログインできなくなりました" in by_answer["mailgun"].body
        assert by_answer["postmark"].body.endswith("以上、よろしくお願いいたします。")
        with Session(engine) as session:
            outcomes = sorted(session.scalars(select(InboundEmail.outcome)))
        assert outcomes == ["accepted"] * 7 + ["duplicate"] * 2
    finally:
        engine.dispose()
