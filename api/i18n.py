"""The customer pages' two languages: Japanese first, English on request (`?lang=en` or Accept-Language).

Only the choice lives here; the words are in the gettext catalogues (api/translations, api.locale), with the
agents' pages'.
"""

from __future__ import annotations

from flask import request

LANGUAGES = ("ja", "en")
DEFAULT_LANGUAGE = "ja"


def pick_language(*, read_form: bool = True) -> str:
    """`lang` in the query string (or the form's hidden field), else the browser's preference, else Japanese.

    Error pages pass read_form=False: reading the form of a request refused as too large would raise again.
    """
    asked = request.args.get("lang", "")
    if not asked and read_form and request.method == "POST":
        asked = request.form.get("lang", "")
    if asked in LANGUAGES:
        return asked
    return request.accept_languages.best_match(LANGUAGES, default=DEFAULT_LANGUAGE) or DEFAULT_LANGUAGE
