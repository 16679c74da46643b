"""The agents' pages in English or Japanese: which one (a cookie set by the top bar's switch, else English), the
switch itself, and `tx(key, **values)` for the templates.

The agent's own choice, not the browser's Accept-Language: only part of the agents' pages is translated so far
(the top bar and the queues), and a Japanese browser should not land on half-Japanese pages without asking.

The words are in api.i18n (AGENT_TEXTS), next to the customer pages' own; a key missing in one language shows the
English text, so a page never shows a bare key.
"""

from __future__ import annotations

from flask import Blueprint, Flask, has_request_context, redirect, request, url_for
from markupsafe import Markup, escape
from werkzeug.wrappers import Response

from api.agents.auth import safe_next
from api.i18n import AGENT_TEXTS

COOKIE = "agent_lang"
LANGUAGES = ("en", "ja")
DEFAULT = "en"
ONE_YEAR = 365 * 24 * 3600

bp = Blueprint("agent_language", __name__, url_prefix="/agent/language")


def agent_language() -> str:
    chosen = request.cookies.get(COOKIE, "")
    return chosen if chosen in LANGUAGES else DEFAULT


def translate(key: str, fallback: str | None = None, **values: object) -> Markup:
    """The text in the agent's language, `{name}` filled with `values`: those are escaped unless already Markup
    (a <time> tag from the time_tag filter), so a translation can hold a tag but never inject one."""
    text = AGENT_TEXTS[agent_language()].get(key) or AGENT_TEXTS[DEFAULT].get(key) or fallback or key
    return escape(text).format(**values)


def category_label(category: str) -> str:
    """A fine category's name in the agent's language: its own (English) name unless a translation exists. Never
    formatted: a corpus may name a category anything, braces included."""
    return AGENT_TEXTS[agent_language()].get(f"category_{category}") or category


@bp.get("/<lang>")
def switch(lang: str) -> Response:
    """Remember the agent's language in a cookie and go back where they were (only to a path on this site). A GET:
    it changes nothing but how this browser's pages read, so it needs no CSRF token."""
    target = safe_next(request.args.get("next")) or url_for("agents.queue")
    response = redirect(target, code=303)
    if lang in LANGUAGES:
        response.set_cookie(COOKIE, lang, max_age=ONE_YEAR, samesite="Lax", httponly=True,
                            secure=request.is_secure)
    return response


def _helpers() -> dict[str, object]:
    lang = agent_language() if has_request_context() else DEFAULT  # a template rendered for a mail has no request
    return {"tx": translate, "category_label": category_label if has_request_context() else str,
            "agent_lang": lang, "other_agent_lang": "ja" if lang == "en" else "en"}


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.context_processor(_helpers)
