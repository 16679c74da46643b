"""The agent's part of an e-mail conversation, in Debian's Chromium driven by Playwright: a customer's mail arrives
through the raw webhook of a real gunicorn; the agent signs in, opens the ticket, types a reply in the reply box
and sends it; the page shows it with its delivery state, the mail worker sends it to a real SMTP server (aiosmtpd
on loopback); an internal note is shown on the page and never sent. Screenshot in test-artifacts/."""

from __future__ import annotations

import time
import uuid

from core import agents
from core.conversations import reference_tag
from core.db import make_engine, make_session_factory
from tests.support.email_webhooks import TestMail, to_mime
from tests.support.mail_e2e import Store, embedded_database, mail_env
from tests.support.mail_replies import post_raw
from tests.support.paths import ROOT
from tests.support.processes import start_api, start_worker, wait_until
from tests.support.smtp import smtp_server  # noqa: F401  (fixture)

ARTIFACTS = ROOT / "test-artifacts"
EMAIL, PASSWORD = "hana@example.jp", "correct horse battery staple"
CUSTOMER = "taro@example.jp"
REPLY = "山田様\n\nお問い合わせありがとうございます。\nパスワードの再設定を完了いたしました。"
NOTE = "電話でも確認済み。次回は二段階認証の案内も。"



def test_agent_replies_to_an_email_ticket_and_adds_a_note_that_is_not_sent(
    browser, processes, trained_model_dir, smtp_server, tmp_path  # noqa: F811
) -> None:
    database_url = embedded_database(tmp_path)
    engine = make_engine(database_url)
    with make_session_factory(engine).begin() as session:
        agents.create_agent(session, EMAIL, PASSWORD, name="Hana Sato")
    engine.dispose()
    env = mail_env(database_url, "filesystem://", trained_model_dir, tmp_path, smtp_server.url,
                   "Support <support@furiwake.example>")  # fmt: skip
    start_worker(processes, env, embedded=True)
    base = start_api(processes, env)
    store = Store(database_url)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="ja-JP")  # type: ignore[attr-defined]
    try:
        arrived = post_raw(base, to_mime(TestMail(
            sender=CUSTOMER, recipient="support@furiwake.example", subject="ログインできません",
            body="パスワードを再設定したのですが、ログインできません。", message_id="<browser-1@mail.example.jp>")))
        assert arrived.status_code == 200, arrived.text
        ticket_id = uuid.UUID(arrived.json()["id"])
        reference = store.ticket(ticket_id).reference
        wait_until(lambda: len(smtp_server.received) == 1, 60, processes, "the acknowledgement")

        page = context.new_page()
        page.goto(f"{base}/agent/tickets/{ticket_id}")
        assert "/agent/login" in page.url
        page.fill("#email", EMAIL)
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"**/agent/tickets/{ticket_id}*")
        assert CUSTOMER in page.locator("#reply label").inner_text()

        # The reply: shown at once with its delivery state, then sent to the SMTP server.
        page.fill("#reply-body", REPLY)
        page.click("#reply button[value=reply]")
        page.wait_for_selector(".flash-success")
        entry = page.locator("li.entry-agent_reply")
        assert entry.count() == 1
        assert entry.locator("pre.body").inner_text() == REPLY
        # A Japanese browser: the agents' pages follow its Accept-Language ("Waiting to be sent", "Sent"). The task
        # may already have claimed an attempt ("送信待ち (1 回試行)") or sent it by the time the page is read.
        delivery = entry.locator(".delivery").inner_text()
        assert delivery.startswith("送信待ち") or delivery == "送信済み", delivery
        wait_until(lambda: len(smtp_server.received) == 2, 60, processes, "the reply at the SMTP server")
        mail = smtp_server.received[1].message
        assert mail["To"] == CUSTOMER and mail["Subject"] == f"Re: ログインできません {reference_tag(reference)}"
        assert mail.get_content().rstrip("\n") == REPLY
        # The server has the mail a moment before the task marks it sent: the page says Sent once it is marked.
        wait_until(lambda: store.messages(kind="agent_reply")[0].delivery == "sent", 30, processes, "marked sent")
        page.reload()
        assert page.locator("li.entry-agent_reply .delivery-sent").inner_text() == "送信済み"

        # The note: on the page, marked internal, and never mailed.
        page.fill("#reply-body", NOTE)
        page.click("#reply button[value=note]")
        page.wait_for_selector(".flash-success")
        note = page.locator("li.entry-note")
        assert note.locator("pre.body").inner_text() == NOTE
        assert "Hana Sato の社内メモ" in note.inner_text() and note.locator(".delivery").count() == 0
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "agent-reply.png"), full_page=True)
        time.sleep(3)  # a mail of the note would have reached the server by now
        assert len(smtp_server.received) == 2
        [stored_note] = store.messages(kind="note")
        assert stored_note.delivery is None and stored_note.recipient is None and stored_note.message_id is None
        [stored_reply] = store.messages(kind="agent_reply")
        assert stored_reply.delivery == "sent" and stored_reply.message_id == mail["Message-ID"]
    finally:
        context.close()
        store.dispose()
