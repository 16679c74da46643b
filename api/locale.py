"""Flask-Babel for every page: which language a request reads in, and where the message catalogues live.

- The agents' pages (/agent…): the signed-in agent's own choice (agents.language, set from the top bar's
  switch), else the browser's Accept-Language, else English.
- The customer's pages: `lang` in the query string or form, else Accept-Language, else Japanese (api.i18n).

Catalogues: api/translations/<lang>/LC_MESSAGES/messages.po and its compiled messages.mo, both committed (so a
fresh clone, a wheel and the Docker image read them with no build step); `make translations` extracts, updates
and compiles them, and tests/api/test_catalogues.py fails when a message lacks its Japanese or the .mo is stale.
Message ids are the English text, so a string without a translation reads in English.
"""

from __future__ import annotations

import flask_login
from flask import Flask, g, has_request_context, request
from flask_babel import Babel

from api.i18n import pick_language

AGENT_LANGUAGES = ("en", "ja")
AGENT_DEFAULT = "en"

babel = Babel()


def agent_language() -> str:
    """The agents' pages' language for this request (see the module's docstring)."""
    if not has_request_context():
        return AGENT_DEFAULT
    user = flask_login.current_user
    chosen = getattr(user, "language", None) if user and user.is_authenticated else None
    if chosen in AGENT_LANGUAGES:
        return str(chosen)
    return request.accept_languages.best_match(AGENT_LANGUAGES, default=AGENT_DEFAULT) or AGENT_DEFAULT


def select_locale() -> str:
    if not has_request_context():
        return AGENT_DEFAULT
    if request.path == "/agent" or request.path.startswith("/agent/"):
        return agent_language()
    return pick_language(read_form=_form_is_read())


def _form_is_read() -> bool:
    """The customer form's own post, its body already read within the size limit (api.intake.web reads it before
    anything else and then notes whether it was UTF-8): only then may the language come from its hidden `lang`
    field. Reading any other body here could raise again on an error page, or take a webhook's body from its view.
    """
    return request.endpoint == "web.submit" and request.method == "POST" and "form_undecodable" in g


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", "translations")  # relative to the app's root (api/)
    babel.init_app(app, locale_selector=select_locale)
