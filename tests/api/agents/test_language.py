"""The agents' pages in English or Japanese: the agent's own choice (kept in their profile, agents.language, set
with the top bar's small POST form), else the browser's Accept-Language, else English. "Browser's language" is a
choice too (None). The switch goes back only to a path on this site, and no cookie carries the language."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient

from core.orm import Agent
from tests.support.agents import AgentAccount, csrf_token, fetch, post_form, visible_text


def _queue_text(client: FlaskClient, **headers: str) -> str:
    return visible_text(client.get("/agent/?queue=all", headers=headers).get_data(as_text=True))


def _choose(client: FlaskClient, language: str, next_url: str | None = None):
    data = {"language": language, **({"next": next_url} if next_url is not None else {})}
    return post_form(client, "/agent/language", "/agent/", **data)


def _stored(app: Flask, agent: AgentAccount) -> str | None:
    [row] = fetch(app, Agent, id=agent.id)
    return row.language


def test_the_browser_decides_until_the_agent_chooses(signed_in: FlaskClient, add_ticket) -> None:
    add_ticket()
    english = _queue_text(signed_in)  # no Accept-Language: English
    assert "Needs review" in english and "Sign out" in english and "Waiting" in english
    japanese = _queue_text(signed_in, **{"Accept-Language": "ja-JP,ja;q=0.9,en;q=0.5"})
    assert "要確認" in japanese and "サインアウト" in japanese and "待ち時間" in japanese
    assert "Needs review" not in japanese and "Sign out" not in japanese


def test_the_choice_is_kept_in_the_profile_and_beats_the_browser(app: Flask, signed_in: FlaskClient,
                                                                  agent: AgentAccount, add_ticket) -> None:
    add_ticket()
    assert _stored(app, agent) is None
    response = _choose(signed_in, "ja")
    assert response.status_code == 303 and _stored(app, agent) == "ja"
    assert "Set-Cookie" not in response.headers or "lang" not in response.headers["Set-Cookie"]
    page = signed_in.get("/agent/?queue=all", headers={"Accept-Language": "en-US"}).get_data(as_text=True)
    assert '<html lang="ja">' in page and "要確認" in visible_text(page)
    assert re.search(r'<option value="ja" lang="ja" selected>日本語</option>', page)

    _choose(signed_in, "en")
    assert _stored(app, agent) == "en"
    assert "Needs review" in _queue_text(signed_in, **{"Accept-Language": "ja"})

    _choose(signed_in, "")  # the browser's language again
    assert _stored(app, agent) is None
    assert "要確認" in _queue_text(signed_in, **{"Accept-Language": "ja"})
    assert "Needs review" in _queue_text(signed_in, **{"Accept-Language": "en"})


def test_the_switch_returns_where_the_agent_was_and_only_there(signed_in: FlaskClient) -> None:
    response = _choose(signed_in, "ja", next_url="/agent/?queue=review")
    assert response.status_code == 303 and response.headers["Location"] == "/agent/?queue=review"
    page = signed_in.get("/agent/?queue=review").get_data(as_text=True)
    assert "待っているチケットはありません。" in visible_text(page)
    assert 'name="next" value="/agent/?queue=review"' in page  # the form comes back here too
    response = _choose(signed_in, "en", next_url="https://evil.example/")
    assert response.status_code == 303 and response.headers["Location"] in ("/agent/", "/agent")


def test_the_switch_refuses_unknown_languages_forged_posts_and_gets(app: Flask, signed_in: FlaskClient,
                                                                     agent: AgentAccount) -> None:
    assert _choose(signed_in, "xx").status_code == 400
    assert signed_in.post("/agent/language", data={"language": "ja"}).status_code == 400  # no CSRF token
    assert signed_in.get("/agent/language").status_code == 405  # a GET never writes
    assert _stored(app, agent) is None


def test_a_stranger_cannot_choose_and_the_sign_in_page_follows_the_browser(client: FlaskClient) -> None:
    token = csrf_token(client, "/agent/login")
    response = client.post("/agent/language", data={"language": "ja", "csrf_token": token})
    assert response.status_code in (302, 303) and "/agent/login" in response.headers["Location"]
    page = client.get("/agent/login", headers={"Accept-Language": "ja"}).get_data(as_text=True)
    assert '<html lang="ja">' in page and "サインイン" in visible_text(page) and "パスワード" in visible_text(page)
    assert 'action="/agent/language"' not in page  # nobody to keep a choice for yet
    assert "Sign in" in visible_text(client.get("/agent/login").get_data(as_text=True))


def test_a_japanese_agent_reads_the_ticket_page_in_japanese(signed_in: FlaskClient, add_ticket) -> None:
    ticket = add_ticket(customer_email="hanako@example.jp")
    _choose(signed_in, "ja")
    page = f"/agent/tickets/{ticket.id}"
    post_form(signed_in, f"{page}/assign", page)
    text = visible_text(signed_in.get(page).get_data(as_text=True))
    for words in ("やり取り", "返信を送信", "メモを追加", "履歴", "web で受付", "担当を割り当て", "振り分け先",
                  "解決済みにする", "自分の担当にしました。", "時間前"):
        assert words in text, (words, text)
    for english in ("Conversation", "Send reply", "History", "Received via", "Resolve", "Assigned to you", "ago"):
        assert english not in text, english
