"""The agents' pages in English or Japanese: the top bar's switch, which keeps the signed-in agent's choice in
their profile (agents.language: "en", "ja", or None for "as my browser says"), and the names of the fine
categories in that language. api.locale reads the choice for every request; the words are gettext catalogues
(api/translations), the customer pages' too.

The choice belongs to the agent, not to a browser, so it follows them to any browser they sign in on. Before
anyone is signed in (the sign-in page) there is nobody to keep it for: that page follows the browser, and no
cookie is kept.
"""

from __future__ import annotations

import re

from flask import Blueprint, Flask, abort, has_request_context, redirect, request, url_for
from flask_babel import get_locale, lazy_pgettext, pgettext
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from api.agents.auth import current_agent, login_required, safe_next
from api.locale import AGENT_LANGUAGES
from api.services import unit_of_work
from core.agents import HistoryEntry
from core.orm import Agent

BROWSER = ""  # the form's value for "no choice of my own": the browser's Accept-Language decides

bp = Blueprint("agent_language", __name__, url_prefix="/agent/language")

# A category is data, but the corpus fixes its names: each has a message here (context "category", so that "Bug" or
# "Usage" never shares a translation with the same English word elsewhere) for extraction to find. A name with no
# translation, a new corpus's say, shows as it is.
CATEGORY_NAMES = (
    lazy_pgettext("category", "Account - Login"), lazy_pgettext("category", "Account - Password"),
    lazy_pgettext("category", "Account - Registration"), lazy_pgettext("category", "Account - Profile"),
    lazy_pgettext("category", "Account - Deletion"), lazy_pgettext("category", "Account - Security"),
    lazy_pgettext("category", "Payment - Method"), lazy_pgettext("category", "Payment - Billing"),
    lazy_pgettext("category", "Payment - Refund"), lazy_pgettext("category", "Payment - Subscription"),
    lazy_pgettext("category", "Shipping"), lazy_pgettext("category", "Product"), lazy_pgettext("category", "Bug"),
    lazy_pgettext("category", "Feature Request"), lazy_pgettext("category", "Usage"),
    lazy_pgettext("category", "Campaign"), lazy_pgettext("category", "Feedback"), lazy_pgettext("category", "Spam"),
)  # fmt: skip


def category_label(category: str) -> str:
    """A fine category's name in the page's language. Never formatted: a corpus may name a category anything,
    braces and percent signs included."""
    return pgettext("category", category) if category else category


def queue_label(key: str) -> str:
    """A queue's tab (core.agents.QUEUES keys); a key added without words here shows as it is."""
    labels = {"account": _("Account"), "payment": _("Payment"), "other": _("Other"), "review": _("Needs review"),
              "all": _("All"), "mine": _("Mine")}
    return labels.get(key, key)


def route_label(route: str) -> str:
    """A route's name (Account, Payment, Other) in the page's language."""
    return queue_label(route.lower()) if route.lower() in ("account", "payment", "other") else route


def status_label(status: str) -> str:
    """A ticket's status as a queue row's badge says it."""
    labels = {"received": _("not queued yet"), "queued": _("waiting for the model"), "routed": _("routed"),
              "needs_review": _("needs review"), "failed": _("routing failed"), "resolved": _("resolved")}
    return labels.get(status, status)


def review_reason_label(reason: str) -> str:
    """Why the model held a ticket in review (core.orm.REVIEW_REASONS), as the agent reads it."""
    labels = {"low_confidence": _("its confidence is below the route's review threshold"),
              "unfamiliar_text": _("the text is unlike anything it was trained on"),
              "no_text": _("no words were left to classify")}
    return labels.get(reason, reason)


def review_reason_name(reason: str) -> str:
    """The same reason in two or three words, for the dashboard's counts."""
    names = {"low_confidence": _("low confidence"), "unfamiliar_text": _("unfamiliar text"),
             "no_text": _("no text")}
    return names.get(reason, reason)


_ROUTED_BY_MODEL = re.compile(r"(?P<verb>Routed by model|Model) (?P<version>\S+): (?P<route>\S+) \((?P<score>[^)]*)\)")
# core.rules.hit_text: "Routed by rule «VIP» v3; the model said Payment 82 %" (or "Matched rule …" for a rule that
# only assigns), maybe followed by why its assignee was skipped.
_RULE = re.compile(r"(?P<what>Routed by|Matched) rule «(?P<name>.*)» v(?P<version>\d+); "
                   r"the model said (?P<route>\S+) (?P<pct>\d+) %(?P<inactive>; its assignee is no longer active.*)?")


def history_text(entry: HistoryEntry) -> str:
    """A ticket history line in the page's language. core.agents.history writes English (it knows no request);
    its lines have a fixed shape per kind, so the words are swapped here and the data (a channel, a version, an
    event's detail) kept. A line of a kind not named here shows as core wrote it."""
    text = entry.text
    if entry.kind == "received" and text.startswith("Received via "):
        return _("Received via %(channel)s", channel=text.removeprefix("Received via "))
    routed = _ROUTED_BY_MODEL.fullmatch(text) if entry.kind == "routed" else None
    if routed is not None:
        values = {"version": routed["version"], "route": route_label(routed["route"]), "score": routed["score"]}
        if routed["verb"] == "Model":  # a rule routed the ticket: this only says what the model said
            return _("Model %(version)s: %(route)s (%(score)s)", **values)
        return _("Routed by model %(version)s: %(route)s (%(score)s)", **values)
    rule = _RULE.fullmatch(text.removeprefix("Rule: ")) if entry.kind == "rule" else None
    if rule is not None:
        values = {"name": rule["name"], "version": rule["version"], "route": route_label(rule["route"]),
                  "pct": rule["pct"]}
        line = (_("Routed by rule «%(name)s» v%(version)s; the model said %(route)s %(pct)s %%", **values)
                if rule["what"] == "Routed by" else
                _("Matched rule «%(name)s» v%(version)s; the model said %(route)s %(pct)s %%", **values))
        if rule["inactive"]:
            line += "; " + _("its assignee is no longer active, so the ticket is assigned automatically")
        return line  # it names the rule itself: no "Rule:" before it
    labels = {
        "rerouted": ("Re-routed", _("Re-routed")), "reviewed": ("Reviewed", _("Reviewed")),
        "recategorised": ("Category", _("Category")), "resolved": ("Resolved", _("Resolved")),
        "assigned": ("Assigned", _("Assigned")), "reopened": ("Reopened", _("Reopened")),
        "attachment_dropped": ("Attachment not kept", _("Attachment not kept")),
    }  # fmt: skip
    english, words = labels.get(entry.kind, ("", ""))
    if english and text == english:
        return words
    if english and text.startswith(english + ": "):
        return f"{words}: {_event_detail(entry.kind, text.removeprefix(english + ': '))}"
    return text


def _event_detail(kind: str, detail: str) -> str:
    """An event's detail as core writes it ("Account → Payment", "Payment confirmed", "none → Bug"), with the
    routes and categories named in the page's language; any other detail is data, shown as written."""
    name = category_label if kind == "recategorised" else route_label
    if kind in ("rerouted", "recategorised") and " → " in detail:
        before, after = detail.split(" → ", 1)
        return f"{_('none') if before == 'none' else name(before)} → {name(after)}"
    if kind == "reviewed" and detail.endswith(" confirmed"):
        return _("%(route)s confirmed", route=route_label(detail.removesuffix(" confirmed")))
    return detail


def choices() -> list[tuple[str, str]]:
    """The switch's options, each language named in itself (an agent who cannot read the page's language still
    finds their own)."""
    return [(BROWSER, _("Browser's language")), ("en", "English"), ("ja", "日本語")]


@bp.post("")
@login_required
def switch() -> Response:
    """Keep the agent's choice in their profile and go back where they were (only to a path on this site)."""
    chosen = request.form.get("language", BROWSER)
    if chosen != BROWSER and chosen not in AGENT_LANGUAGES:
        abort(400)
    with unit_of_work() as db:
        agent = db.get(Agent, current_agent().agent_id)
        if agent is None:  # deleted while signed in: the next request signs them out anyway
            abort(404)
        agent.language = chosen or None
    return redirect(safe_next(request.form.get("next")) or url_for("agents.queue"), code=303)


def _helpers() -> dict[str, object]:
    if not has_request_context():  # a template rendered for a mail
        return {"category_label": str, "queue_label": str, "route_label": str, "status_label": str, "agent_lang": "en"}
    return {
        "category_label": category_label, "queue_label": queue_label, "route_label": route_label,
        "status_label": status_label, "review_reason_label": review_reason_label,
        "review_reason_name": review_reason_name, "history_text": history_text,
        "language_choices": choices,
        "agent_lang": str(get_locale() or "en"),
    }  # fmt: skip


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.context_processor(_helpers)
