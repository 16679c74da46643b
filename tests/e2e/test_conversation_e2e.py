"""A whole e-mail conversation over real processes and a real SMTP server (aiosmtpd on loopback), on both
deployments (embedded: SQLite + filesystem broker; PostgreSQL + Redis): a Japanese customer writes, gets an
acknowledgement with the reference, the ticket is routed by the model, an agent answers with a token, resolves it;
the customer answers from Thunderbird (quoting our mail) onto the same ticket, which reopens with only their new
words; the agent answers again, in the thread; the customer's out-of-office lands on the ticket as automatic mail,
opening nothing and answered by nothing."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
import requests

from core.conversations import reference_tag
from tests.support.email_webhooks import TestMail, to_mime
from tests.support.mail_e2e import Store, agent_token, embedded_database, mail_env
from tests.support.mail_replies import auto_reply, client_reply, post_raw
from tests.support.processes import start_api, start_worker, wait_until
from tests.support.smtp import smtp_server  # noqa: F401  (fixture)

SUPPORT = "support@furiwake.example"
CUSTOMER = ("山田 太郎", "taro@example.jp")
FIRST = TestMail(sender=CUSTOMER[1], name=CUSTOMER[0], recipient=SUPPORT, subject="ログインできません",
                 body="お世話になっております。\nパスワードを再設定したのですが、新しいパスワードでログインできません。\n"
                      "確認をお願いいたします。\n\n山田",
                 message_id="<CAF1st-7QxZ@mail.example.jp>")  # fmt: skip
CORPUS_CATEGORIES = {row.split("\t")[3].strip() for row in
                     (Path(__file__).parents[2] / "data" / "tickets.tsv").read_text(encoding="utf-8").splitlines()[1:]}
SECOND = "山田様\n\n請求書の宛名は「アカウント設定」→「請求先」から変更いただけます。"
CUSTOMER_WORDS = "ありがとうございます。ログインできました。\n別件ですが、請求書の宛名を変更できますか。"


@pytest.mark.parametrize("deployment", ["embedded", pytest.param("postgres", marks=[pytest.mark.postgres,
                                                                                    pytest.mark.redis])])
def test_a_japanese_customer_and_an_agent_converse_by_email(
    request, deployment, processes, trained_model_dir, smtp_server, tmp_path  # noqa: F811
) -> None:
    if deployment == "embedded":
        database_url, broker_url = embedded_database(tmp_path), "filesystem://"
    else:
        database_url, broker_url = request.getfixturevalue("postgres_url"), request.getfixturevalue("redis_url")
    bearer = {"Authorization": f"Bearer {agent_token(database_url)}"}
    env = mail_env(database_url, broker_url, trained_model_dir, tmp_path, smtp_server.url,
                   f"サポート窓口 <{SUPPORT}>")  # fmt: skip
    start_worker(processes, env, embedded=deployment == "embedded")
    base = start_api(processes, env)
    store = Store(database_url)

    def mails(count: int, what: str) -> list:
        wait_until(lambda: len(smtp_server.received) >= count, 90, processes, what)
        return [received.message for received in smtp_server.received]

    try:
        # The customer's first mail: a ticket, and the acknowledgement with its reference (RFC 3834 marked).
        first = post_raw(base, to_mime(FIRST))
        assert first.status_code == 200, first.text
        ticket_id = uuid.UUID(first.json()["id"])
        reference = store.ticket(ticket_id).reference
        [ack] = mails(1, "the acknowledgement")
        assert ack["To"] == CUSTOMER[1] and ack["Subject"] == f"お問い合わせを受け付けました {reference_tag(reference)}"
        assert ack["Auto-Submitted"] == "auto-replied" and ack["Content-Language"] == "ja"
        assert f"受付番号: {reference}" in ack.get_content() and "山田 太郎様" in ack.get_content()
        assert ack["In-Reply-To"] == FIRST.message_id  # threads under the customer's own mail in their client

        # The model routes it.
        wait_until(lambda: store.ticket(ticket_id).status in ("routed", "needs_review"), 120, processes, "the route")
        assert store.ticket(ticket_id).route in ("Account", "Payment", "Other")

        # The agent sees the fine category (the model's second output) and suggested answers of that category.
        seen = requests.get(f"{base}/api/v1/tickets/{ticket_id}", headers=bearer, timeout=10).json()
        assert seen["fine_category"] in CORPUS_CATEGORIES and 0.0 < seen["fine_confidence"] <= 1.0
        suggestions = requests.get(f"{base}/api/v1/tickets/{ticket_id}/suggestions", headers=bearer, timeout=30)
        assert suggestions.status_code == 200, suggestions.text
        top = suggestions.json()[0]
        assert top["category"] == seen["fine_category"] and top["text"].strip() and 0.0 < top["similarity"] <= 1.0

        # The agent edits the top suggestion and sends it (and resolves): the reply goes out in the thread, with
        # the tag.
        answer = f"山田様\n\n{top['text'].strip()}\n\nサポート窓口 佐藤"
        sent = requests.post(f"{base}/api/v1/tickets/{ticket_id}/replies", json={"body": answer}, headers=bearer,
                             timeout=10)  # fmt: skip
        assert sent.status_code == 202, sent.text
        reply = mails(2, "the agent's reply")[1]
        assert reply["Message-ID"] == sent.json()["message_id"] and reply["To"] == CUSTOMER[1]
        assert reply["Subject"] == f"Re: ログインできません {reference_tag(reference)}"
        assert ack["Message-ID"] in reply["References"].split()
        assert reply["In-Reply-To"] == FIRST.message_id and reply["References"].split()[0] == FIRST.message_id
        assert reply["Auto-Submitted"] is None and reply["Content-Language"] == "ja"
        assert reply.get_content().rstrip("\n") == answer
        resolved = requests.post(f"{base}/api/v1/tickets/{ticket_id}/resolve", headers=bearer, timeout=10)
        assert resolved.status_code == 200 and resolved.json()["status"] == "resolved"

        # The customer answers from Thunderbird, quoting our reply: same ticket, reopened, their words only.
        answered = post_raw(base, client_reply(reply, CUSTOMER, CUSTOMER_WORDS, client="thunderbird"))
        assert answered.status_code == 200, answered.text
        assert answered.json() == {"id": str(ticket_id), "duplicate": False, "threaded": True}
        ticket = store.ticket(ticket_id)
        assert ticket.status == "routed" and ticket.resolved_at is None
        assert store.events(ticket_id)[-3:] == ["replied", "resolved", "reopened"]
        [customer] = store.messages(kind="customer")
        assert customer.ticket_id == ticket_id and customer.body == CUSTOMER_WORDS
        assert customer.in_reply_to == reply["Message-ID"]
        assert len(store.tickets()) == 1

        # The agent answers that: In-Reply-To is the customer's mail, References the whole thread.
        again = requests.post(f"{base}/api/v1/tickets/{ticket_id}/replies", json={"body": SECOND}, headers=bearer,
                              timeout=10)  # fmt: skip
        assert again.status_code == 202, again.text
        second = mails(3, "the second reply")[2]
        assert second["In-Reply-To"] == customer.message_id
        assert second["References"].split()[-3:] == [ack["Message-ID"], reply["Message-ID"], customer.message_id]

        # The customer's out-of-office answers it: automatic mail on the ticket, no ticket, nothing sent back.
        away = post_raw(base, auto_reply(second, CUSTOMER, "vacation"))
        assert away.status_code == 200, away.text
        assert away.json()["id"] == str(ticket_id) and away.json()["automatic"].startswith("out-of-office subject")
        [automatic] = store.messages(kind="automatic")
        assert automatic.ticket_id == ticket_id and automatic.sender == CUSTOMER[1]
        assert (automatic.subject or "").startswith("自動返信: Re: ログインできません")
        time.sleep(3)  # an acknowledgement or any answer to it would have reached the server by now
        assert len(smtp_server.received) == 3 and len(store.tickets()) == 1
        assert store.ticket(ticket_id).status == "routed"
        assert [m.delivery for m in store.messages() if m.kind in ("acknowledgement", "agent_reply")] == ["sent"] * 3
    finally:
        store.dispose()
