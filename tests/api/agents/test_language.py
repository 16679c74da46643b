"""The agents' pages in English (the default) or Japanese, chosen with the top bar's switch (a cookie); the switch
goes back only to a path on this site."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.support.agents import visible_text


def _queue_text(client: FlaskClient, **headers: str) -> str:
    return visible_text(client.get("/agent/?queue=all", headers=headers).get_data(as_text=True))


def test_english_until_the_agent_switches_to_japanese(signed_in: FlaskClient, add_ticket) -> None:
    add_ticket()
    english = _queue_text(signed_in, **{"Accept-Language": "ja-JP"})  # a Japanese browser alone changes nothing
    assert "Needs review" in english and "Sign out" in english and "Waiting" in english and "日本語" in english
    signed_in.get("/agent/language/ja")
    japanese = _queue_text(signed_in)
    assert "要確認" in japanese and "サインアウト" in japanese and "待ち時間" in japanese and "English" in japanese
    assert "Needs review" not in japanese and "Sign out" not in japanese


def test_the_switch_is_remembered_and_returns_where_the_agent_was(signed_in: FlaskClient) -> None:
    response = signed_in.get("/agent/language/ja?next=/agent/%3Fqueue%3Dreview")
    assert response.status_code == 303 and response.headers["Location"] == "/agent/?queue=review"
    page = signed_in.get("/agent/?queue=review").get_data(as_text=True)
    assert '<html lang="ja">' in page and "待っているチケットはありません。" in visible_text(page)
    assert "/agent/language/en?next=" in page  # the way back to English
    signed_in.get("/agent/language/en")
    assert "Nothing waiting here." in _queue_text(signed_in)


def test_the_switch_refuses_other_sites_and_unknown_languages(client: FlaskClient) -> None:
    response = client.get("/agent/language/ja?next=https://evil.example/")
    assert response.status_code == 303 and response.headers["Location"] in ("/agent/", "/agent")
    response = client.get("/agent/language/xx")
    assert response.status_code == 303 and "agent_lang" not in response.headers.get("Set-Cookie", "")
