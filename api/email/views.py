"""The four webhook endpoints: authenticate, turn the payload into an InboundMail, hand it to intake.

Answers: 200 {"id", "duplicate"} for a stored (or already stored) mail, with "threaded": true when it joined
an existing ticket's conversation and "automatic": the reason when it was an auto-reply or bounce (then "id" is
the ticket it was kept on, or null when it concerned none: logged, stored nowhere, 200 so nothing retries).
For a mail that cannot become a ticket, a problem with the status that makes its provider stop retrying
(SendGrid retries only 5xx, Mailgun stops on 406, Postmark on 403; the raw pipe gets 422 so its script can
bounce). Nothing here ever answers 5xx for the mail's
own faults; a 5xx means our side failed, and the provider's retry is what we want.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from api.email import intake, providers
from api.email.auth import check_basic_auth, check_mailgun_signature, forget_token
from api.email.formdata import read_form
from api.email.message import InboundMail, MailRejected
from api.email.mime import parse_rfc822
from api.parsing import read_body
from api.problems import problem_response
from api.services import current_runtime

bp = Blueprint("email", __name__, url_prefix="/webhooks/email")

REJECTED = "urn:furiwake:problem:email-rejected"
REJECT_STATUS = {"sendgrid": 422, "mailgun": 406, "postmark": 403, "raw": 422}
# Above every provider's own message limit (SendGrid 30 MB, Mailgun 25 MB, Postmark 35 MB), for this blueprint
# only: attachments come in the same request (stored up to the ATTACHMENT_* limits, core.attachments).
MAX_REQUEST_BYTES = 40 * 1024 * 1024


@bp.url_value_preprocessor
def _exempt_from_csrf(_endpoint: str | None, _values: dict[str, object] | None) -> None:
    """The web pages check a CSRF token on every POST outside /api/ (flask-wtf's CSRFProtect, in the app's
    before_request). Webhooks carry no cookies and prove themselves by credentials or signature, so they are exempt.
    Done here, at request time, because URL preprocessors run before any before_request, whichever order the
    extensions were set up in."""
    csrf = current_app.extensions.get("csrf")
    if csrf is not None:
        csrf.exempt(bp)


@bp.before_request
def _allow_whole_mails() -> None:
    request.max_content_length = MAX_REQUEST_BYTES


@bp.errorhandler(HTTPException)
def _problem(error: HTTPException) -> Response:
    """Errors under /webhooks/ are problem details too (413, or a 500 from a database outage)."""
    return problem_response(error.code or 500, detail=error.description)


@bp.post("/sendgrid")
def sendgrid() -> Response:
    denied = check_basic_auth(current_runtime().settings)
    return denied or _receive("sendgrid", lambda: providers.sendgrid(read_form(request)))


@bp.post("/postmark")
def postmark() -> Response:
    denied = check_basic_auth(current_runtime().settings)
    return denied or _receive("postmark", lambda: providers.postmark(read_body(request, cache=False)))


@bp.post("/raw")
def raw() -> Response:
    """One RFC 822 message; `?recipient=` (the envelope recipient, when the MTA passes it) helps deduplication."""
    denied = check_basic_auth(current_runtime().settings)
    return denied or _receive("raw", _raw_mail)


def _raw_mail() -> InboundMail:
    if request.mimetype != "message/rfc822":
        raise MailRejected(f"expected Content-Type message/rfc822, got {request.mimetype or 'none'}")
    recipient = (request.args.get("recipient") or "").strip().lower() or None
    return parse_rfc822(read_body(request, cache=False), "raw", recipient)


@bp.post("/mailgun")
@bp.post("/mailgun/mime")  # Mailgun posts the raw MIME (body-mime) to route URLs ending in "mime"
def mailgun() -> Response:
    runtime = current_runtime()
    try:
        form = read_form(request)
    except MailRejected as exc:  # not even the signature can be read: nothing to record
        return problem_response(406, detail=exc.reason, type=REJECTED)
    denied = check_mailgun_signature(form, runtime.settings, runtime.sessions)
    if denied:
        return denied
    try:
        return _receive("mailgun", lambda: providers.mailgun(form))
    except Exception:
        forget_token(form, runtime.sessions)
        raise


def _receive(provider: str, parse: Callable[[], InboundMail]) -> Response:
    runtime = current_runtime()
    try:
        outcome = intake.accept(parse(), runtime)
    except MailRejected as exc:
        intake.reject(runtime, provider, exc)
        return problem_response(REJECT_STATUS[provider], detail=exc.reason, type=REJECTED, title="E-mail rejected")
    answer: dict[str, object] = {
        "id": str(outcome.ticket_id) if outcome.ticket_id is not None else None,
        "duplicate": outcome.duplicate,
    }
    if outcome.threaded:
        answer["threaded"] = True
    if outcome.automatic is not None:
        answer["automatic"] = outcome.automatic
    return jsonify(answer)
