"""Markup in every text a customer controls, shown in Debian's Chromium (Playwright) by a real gunicorn: the
customer's page, the agents' queue and the agent's ticket page show it as text, no script runs (an alert() would
open a dialog), and no link becomes a `javascript:` URL.

The pages' Content-Security-Policy forbids the eval behind Playwright's JavaScript-string helpers, so everything
here is read through selectors and locators. No worker: the tickets stay queued, which every page shows as well.
"""

from __future__ import annotations

import requests

from core import agents
from core.db import make_engine, make_session_factory
from tests.support.processes import service_env, start_api

EMAIL, PASSWORD = "hana@example.jp", "correct horse battery staple"

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
JS_URL = "javascript:alert(1)"
BODY = f'{SCRIPT}\n{IMG}\n{JS_URL}\n<a href="{JS_URL}">click</a>'
# Through the JSON API: the fields the web form has no input for, and an address with markup in its (quoted,
# valid) local part, which a browser's type=email input would not let through.
API_TICKET = {"subject": IMG, "body": BODY, "customer_name": SCRIPT, "customer_email": f'"{SCRIPT}"@example.com'}
FORM_SUBJECT = f"{SCRIPT} {JS_URL}"


def _assert_inert(page) -> None:  # noqa: ANN001
    """No link to a `javascript:` URL, no script but the page's own files, no element carrying an event handler."""
    links = page.locator("a[href]")
    hrefs = [links.nth(i).get_attribute("href") or "" for i in range(links.count())]
    assert not [href for href in hrefs if href.strip().lower().startswith("javascript:")], hrefs
    scripts = page.locator("script")
    sources = [scripts.nth(i).get_attribute("src") for i in range(scripts.count())]
    assert all(src and src.startswith("/static/") for src in sources), sources
    assert page.locator("[onerror], [onclick], [onload]").count() == 0
    assert page.locator("img[src=x]").count() == 0


def test_customer_markup_is_shown_as_text_and_never_runs(browser, processes, tmp_path) -> None:  # noqa: ANN001
    from core.migrate import upgrade

    database_url = f"sqlite:///{tmp_path / 'var' / 'furiwake.db'}"
    upgrade(database_url)
    engine = make_engine(database_url)
    with make_session_factory(engine).begin() as session:
        agents.create_agent(session, EMAIL, PASSWORD, name="Hana Sato")
    engine.dispose()
    base = start_api(processes, service_env(database_url, "filesystem://", tmp_path / "models", tmp_path))
    response = requests.post(f"{base}/api/v1/tickets", json=API_TICKET, timeout=10)
    assert response.status_code == 202, response.text
    api_ticket = response.json()["id"]

    context = browser.new_context(locale="en-US")  # type: ignore[attr-defined]
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    # The customer: the web form, then the ticket's public page (status, team, reference; none of the text).
    page.goto(f"{base}/?lang=en")
    page.fill("#subject", FORM_SUBJECT)
    page.fill("#customer_email", "taro@example.jp")
    page.fill("#body", BODY)
    page.click("button[type=submit]")
    page.wait_for_url("**/tickets/*")
    form_ticket = page.url.split("/tickets/")[1].split("?")[0]
    assert page.locator("#status").inner_text() == "Waiting to be routed"
    page.wait_for_timeout(1500)  # the page's poller has fetched the public view once and written it
    assert "alert" not in page.locator("main").inner_text()
    _assert_inert(page)
    page.goto(f"{base}/tickets/{api_ticket}?lang=en")
    assert page.locator("#reference").inner_text().startswith("T-")
    _assert_inert(page)

    # The agent: the queue lists both tickets with their titles as typed.
    page.goto(f"{base}/agent/login")
    page.fill("#email", EMAIL)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/agent/login" not in url)
    page.goto(f"{base}/agent?queue=all")
    form_row = page.locator(f'tr[data-ticket-id="{form_ticket}"]')
    api_row = page.locator(f'tr[data-ticket-id="{api_ticket}"]')
    assert FORM_SUBJECT in form_row.inner_text()
    assert IMG in api_row.inner_text() and f'"{SCRIPT}"@example.com' in api_row.inner_text()
    _assert_inert(page)
    page.wait_for_timeout(5500)  # one refresh of the queue (static/agent.js), which swaps the rows in again
    assert FORM_SUBJECT in page.locator(f'tr[data-ticket-id="{form_ticket}"]').inner_text()
    _assert_inert(page)

    # The agent's ticket pages: every field as typed.
    page.goto(f"{base}/agent/tickets/{api_ticket}")
    assert page.locator("h1.ticket-subject").inner_text() == IMG
    assert page.locator("pre.body").inner_text() == BODY
    customer = page.locator("dl.customer").inner_text()
    assert SCRIPT in customer and f'"{SCRIPT}"@example.com' in customer and IMG in customer
    _assert_inert(page)
    page.goto(f"{base}/agent/tickets/{form_ticket}")
    assert page.locator("h1.ticket-subject").inner_text() == FORM_SUBJECT
    assert page.locator("pre.body").inner_text() == BODY
    _assert_inert(page)

    assert dialogs == []
    context.close()
