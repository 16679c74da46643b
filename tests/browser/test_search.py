"""Search in the agents' Japanese pages, in Debian's Chromium driven by Playwright against a real gunicorn: the
agent switches to 日本語, types a Japanese word that sits inside a sentence into the top bar's search box, presses
Enter, and finds the ticket (on SQLite: the FTS5 trigram index and, for two characters, the scan)."""

from __future__ import annotations

from core import agents
from core.db import make_engine, make_session_factory
from core.orm import Ticket
from tests.support.processes import service_env, start_api

EMAIL, PASSWORD = "hana@example.jp", "correct horse battery staple"


def test_an_agent_finds_a_ticket_by_a_japanese_word(browser, processes, tmp_path) -> None:  # noqa: ANN001
    from core.migrate import upgrade

    database_url = f"sqlite:///{tmp_path / 'var' / 'furiwake.db'}"
    upgrade(database_url)
    engine = make_engine(database_url)
    with make_session_factory(engine).begin() as session:
        agents.create_agent(session, EMAIL, PASSWORD, name="Hana Sato")
        refund = Ticket(channel="web", body="先月のカード決済が二重になっています。返金をお願いします。",
                        status="routed", route="Payment", customer_email="taro@example.jp")
        other = Ticket(channel="web", body="ログインできません", status="routed", route="Account")
        session.add_all([refund, other])
        session.flush()
        refund_id, reference = refund.id, refund.reference
    engine.dispose()
    base = start_api(processes, service_env(database_url, "filesystem://", tmp_path / "models", tmp_path))

    context = browser.new_context(locale="ja-JP")  # type: ignore[attr-defined]
    try:
        page = context.new_page()
        page.goto(f"{base}/agent")
        page.fill("#email", EMAIL)
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url("**/agent*")
        page.select_option("form.language select", "ja")  # 日本語, kept in the agent's profile
        page.click("form.language button")
        page.wait_for_selector("html[lang=ja]")
        for word in ("返金", "カード決済が二重"):
            box = page.locator("form.topsearch input[name=q]")
            box.fill(word)
            box.press("Enter")
            page.wait_for_url("**/agent/search?q=*")
            assert page.locator("h1").inner_text() == "検索"
            rows = page.locator("table.search-results tbody tr")
            assert rows.count() == 1 and rows.first.get_attribute("data-ticket-id") == str(refund_id)
            assert reference in rows.first.inner_text()
        page.locator("form.topsearch input[name=q]").fill("解約")
        page.locator("form.topsearch input[name=q]").press("Enter")
        page.wait_for_selector("p.empty")
        assert page.locator("p.empty").inner_text() == "該当するチケットはありません。"
    finally:
        context.close()
