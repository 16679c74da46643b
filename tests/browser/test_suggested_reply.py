"""A suggested reply, in Debian's Chromium driven by Playwright against a real gunicorn: the agent opens a ticket
whose fine category is set (as the worker would leave it), sees the nearest answers of that category from the
corpus (RETRAIN_CORPUS: a tiny one written here), clicks "Use this reply", and the reply box holds the answer,
ready to edit and send. The page's own agent.js does it: the CSP forbids inline scripts. Screenshot in
test-artifacts/."""

from __future__ import annotations

from core import agents
from core.db import make_engine, make_session_factory
from core.orm import Ticket
from tests.support.paths import ROOT
from tests.support.processes import service_env, start_api
from tests.support.tiny_corpus import PASSWORD_JA, write_corpus

ARTIFACTS = ROOT / "test-artifacts"
EMAIL, PASSWORD = "hana@example.jp", "correct horse battery staple"


def test_the_agent_uses_a_suggested_reply(browser, processes, tmp_path) -> None:  # noqa: ANN001
    from core.migrate import upgrade

    database_url = f"sqlite:///{tmp_path / 'var' / 'furiwake.db'}"
    upgrade(database_url)
    engine = make_engine(database_url)
    with make_session_factory(engine).begin() as session:
        agents.create_agent(session, EMAIL, PASSWORD, name="Hana Sato")
        ticket = Ticket(channel="email", body="パスワード再設定のメールが届かないのですが", status="routed",
                        route="Account", fine_category="Account - Password", fine_confidence=0.9,
                        customer_email="taro@example.jp")
        session.add(ticket)
        session.flush()
        ticket_id = ticket.id
    engine.dispose()
    env = service_env(database_url, "filesystem://", tmp_path / "models", tmp_path,
                      RETRAIN_CORPUS=str(write_corpus(tmp_path)))
    base = start_api(processes, env)

    context = browser.new_context(locale="en-US")  # type: ignore[attr-defined]
    try:
        page = context.new_page()
        page.goto(f"{base}/agent/tickets/{ticket_id}")
        page.fill("#email", EMAIL)
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"**/agent/tickets/{ticket_id}*")
        first = page.locator("li.suggestion").first
        assert first.locator(".suggestion-text").inner_text() == PASSWORD_JA
        assert "Account - Password" in first.inner_text() and "% similar" in first.inner_text()
        assert page.locator("#reply-body").input_value() == ""
        first.locator("button[data-use-suggestion]").click()
        assert page.locator("#reply-body").input_value() == PASSWORD_JA
        # Typed text is kept: a second suggestion goes below it.
        page.fill("#reply-body", "山田様")
        first.locator("button[data-use-suggestion]").click()
        assert page.locator("#reply-body").input_value() == f"山田様\n\n{PASSWORD_JA}"
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "suggested-reply.png"), full_page=True)
        # ... and sends the edited answer: it joins the conversation as an outbound reply (the outbox sends it).
        page.click("#reply button[value=reply]")
        page.wait_for_selector(".flash-success")
        entry = page.locator("li.entry-agent_reply")
        assert entry.count() == 1
        assert entry.locator("pre.body").inner_text() == f"山田様\n\n{PASSWORD_JA}"
    finally:
        context.close()
