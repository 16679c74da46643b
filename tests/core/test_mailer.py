"""core.mailer: the outbound mail's headers and encoding, sent over a real SMTP dialogue (aiosmtpd on loopback)."""

from __future__ import annotations

import uuid

import pytest

from core import mailer
from core.config import ConfigError, MailSettings, Settings, SmtpServer
from core.orm import Message, Ticket, utcnow
from tests.support.smtp import SmtpServer as LoopbackSmtp
from tests.support.smtp import smtp_server  # noqa: F401  (fixture)

MAIL_FROM = "サポート窓口 <support@example.jp>"


def _ticket(**fields: object) -> Ticket:
    values: dict[str, object] = {"id": uuid.uuid4(), "reference": "T-7KQ2M9XA", "channel": "email",
                                 "subject": "ログインできません", "body": "パスワードを忘れました。",
                                 "customer_name": "髙橋 花子", "customer_email": "hanako@example.com"}
    values.update(fields)
    return Ticket(**values)


def _reply(ticket: Ticket, body: str = "髙橋様\nパスワードを再設定しました。🙂\n") -> Message:
    language = mailer.language_of(ticket.subject, ticket.body)
    return Message(id=1, ticket_id=ticket.id, kind="agent_reply", channel="email", recipient=ticket.customer_email,
                   subject=mailer.reply_subject(ticket, language), body=body, language=language,
                   message_id=mailer.new_message_id(MAIL_FROM), in_reply_to="<first@customer.example>",
                   references="<first@customer.example> <ack@example.jp>", created_at=utcnow(), attempts=0)


def _settings(url: str) -> MailSettings:
    return MailSettings(smtp=SmtpServer.parse(url), mail_from=MAIL_FROM)


def test_a_reply_carries_threading_headers_and_the_reference_tag() -> None:
    ticket = _ticket()
    message = _reply(ticket)
    mail = mailer.build(message, MAIL_FROM)
    assert mail["Subject"] == "Re: ログインできません [T-7KQ2M9XA]"
    assert mail["Message-ID"] == message.message_id and message.message_id.endswith("@example.jp>")
    assert mail["In-Reply-To"] == "<first@customer.example>"
    assert mail["References"] == "<first@customer.example> <ack@example.jp>"
    assert mail["Auto-Submitted"] is None  # a person wrote it
    assert mail.get_content_type() == "text/plain" and mail.get_content_charset() == "utf-8"


def test_the_subject_is_not_prefixed_or_tagged_twice() -> None:
    ticket = _ticket(subject="RE: 請求書 [T-7KQ2M9XA]")
    assert mailer.reply_subject(ticket, "ja") == "RE: 請求書 [T-7KQ2M9XA]"
    assert mailer.reply_subject(_ticket(subject=None, body="Hello"), "en") == "Re: Your question [T-7KQ2M9XA]"


def test_the_language_follows_what_the_customer_wrote() -> None:
    assert mailer.language_of("Cannot log in", "My password is lost") == "en"
    assert mailer.language_of(None, "ﾊﾟｽﾜｰﾄﾞ") == "ja"
    assert mailer.language_of("Login", "ログインできません") == "ja"


def test_an_acknowledgement_is_marked_automatic_and_links_the_ticket_page() -> None:
    ticket = _ticket(subject="Invoice", body="Where is my invoice?")
    message = Message(id=2, ticket_id=ticket.id, kind="acknowledgement", channel="email",
                      recipient="hanako@example.com", subject=mailer.acknowledgement_subject(ticket, "en"),
                      body=mailer.acknowledgement_body(ticket, "en", "https://support.example.jp"), language="en",
                      message_id=mailer.new_message_id(MAIL_FROM), created_at=utcnow(), attempts=0)
    mail = mailer.build(message, MAIL_FROM)
    assert mail["Auto-Submitted"] == "auto-replied"
    assert mail["X-Auto-Response-Suppress"] == "All"
    assert "[T-7KQ2M9XA]" in mail["Subject"]
    assert f"https://support.example.jp/tickets/{ticket.id}?lang=en" in mail.get_content()


def test_japanese_survives_the_smtp_round_trip(smtp_server: LoopbackSmtp) -> None:  # noqa: F811
    ticket = _ticket()
    message = _reply(ticket)
    mailer.send(_settings(smtp_server.url), mailer.build(message, MAIL_FROM))
    [got] = smtp_server.received
    assert got.envelope_from == "support@example.jp" and got.recipients == ["hanako@example.com"]
    assert got.raw.isascii()  # base64 body and RFC 2047 subject: no relay needs 8BITMIME
    assert b"charset=\"utf-8\"" in got.raw
    received = got.message
    assert received["Subject"] == "Re: ログインできません [T-7KQ2M9XA]"
    assert received["From"].addresses[0].display_name == "サポート窓口"
    assert received.get_content() == message.body
    assert received["Message-ID"] == message.message_id


def test_the_message_id_is_the_stored_one_on_every_attempt(smtp_server: LoopbackSmtp) -> None:  # noqa: F811
    message = _reply(_ticket())
    for _ in range(2):
        mailer.send(_settings(smtp_server.url), mailer.build(message, MAIL_FROM))
    first, second = smtp_server.received
    assert first.message["Message-ID"] == second.message["Message-ID"] == message.message_id
    assert first.message["Date"] == second.message["Date"]


def test_a_server_that_is_down_is_a_temporary_failure() -> None:
    down = LoopbackSmtp()  # a spare port nobody listens on
    with pytest.raises(mailer.SendError) as failure:
        mailer.send(_settings(down.url), mailer.build(_reply(_ticket()), MAIL_FROM))
    assert not failure.value.permanent


@pytest.mark.parametrize(("answer", "permanent"), [("451 4.3.0 try later", False), ("550 5.1.1 no such user", True)])
def test_a_refusal_is_permanent_only_when_it_is_a_5xx(smtp_server: LoopbackSmtp, answer: str,  # noqa: F811
                                                      permanent: bool) -> None:
    smtp_server.refuse(answer)
    with pytest.raises(mailer.SendError) as failure:
        mailer.send(_settings(smtp_server.url), mailer.build(_reply(_ticket()), MAIL_FROM))
    assert failure.value.permanent is permanent
    assert answer.split()[0] in str(failure.value)


def test_starttls_required_is_never_plain(smtp_server: LoopbackSmtp) -> None:  # noqa: F811
    """A server that offers no STARTTLS under smtp+starttls:// is an error, not a fall back to plain text."""
    settings = _settings(f"smtp+starttls://127.0.0.1:{smtp_server.port}")
    with pytest.raises(mailer.SendError):
        mailer.send(settings, mailer.build(_reply(_ticket()), MAIL_FROM))
    assert smtp_server.received == []


def test_the_mail_settings_are_read_and_checked() -> None:
    settings = Settings.from_env({"SMTP_URL": "smtps://user%40x:p%3Ass@mail.example.jp", "MAIL_FROM": MAIL_FROM,
                                  "ACKNOWLEDGE_MAX_PER_HOUR": "5", "PUBLIC_URL": "https://support.example.jp/"})
    assert settings.mail.smtp == SmtpServer("smtps", "mail.example.jp", 465, "user@x", "p:ss")
    assert settings.mail.acknowledges and settings.mail.acknowledge_max_per_hour == 5
    assert settings.mail.public_url == "https://support.example.jp"
    assert "p:ss" not in repr(settings)
    off = Settings.from_env({"SMTP_URL": "smtp://127.0.0.1:2525", "MAIL_FROM": "s@example.jp", "ACKNOWLEDGE": "off"})
    assert off.mail.sends and not off.mail.acknowledges
    assert not Settings.from_env({}).mail.acknowledges  # no SMTP_URL, no acknowledgements
    for env in ({"SMTP_URL": "http://mail.example.jp"}, {"SMTP_URL": "smtp://127.0.0.1:2525"},
                {"MAIL_FROM": "not an address"}, {"ACKNOWLEDGE": "sometimes"}, {"ACKNOWLEDGE_MAX_PER_HOUR": "0"},
                {"PUBLIC_URL": "support.example.jp"}, {"SMTP_URL": "smtp://u:secret@h:x", "MAIL_FROM": "a@b.c"}):
        with pytest.raises(ConfigError) as error:
            Settings.from_env(env)
        assert "secret" not in str(error.value) and "\n" not in str(error.value)
