"""Inbound e-mail: webhooks for SendGrid, Mailgun and Postmark, and raw RFC 822 from an MTA (docs/email.md).

Each mail becomes one ticket on the `email` channel through core.tickets.submit_ticket, the same path as the
JSON API; every mail is logged in inbound_emails as accepted, duplicate or rejected.
"""

from api.email.views import bp

__all__ = ["bp"]
