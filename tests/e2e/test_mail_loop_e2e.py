"""Mail loops, played for real: furiwake (gunicorn + a mail worker, embedded SQLite + filesystem broker) sends over
SMTP to an aiosmtpd server whose handler answers every mail straight back into furiwake's raw webhook. Whatever
the other side is, the exchange stops after a few mails and no tickets keep appearing.

- An auto-responder, in the three manners of tests/support/mail_replies.auto_reply: RFC 3834's header and a
  vacation subject are recognised as automatic (kept on the ticket, never answered); a helpdesk that marks nothing
  and opens a case per mail gets acknowledgements until ACKNOWLEDGE_MAX_PER_HOUR, then none.
- Two furiwake installations, each one's outbound mail delivered into the other's webhook, the customer of one
  being the other's MAIL_FROM: acknowledgements (Auto-Submitted) are never answered, and a person's reply from
  one opens one ticket on the other, whose acknowledgement goes nowhere further.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from tests.support.email_webhooks import TestMail, to_mime
from tests.support.mail_e2e import (
    Store,
    agent_token,
    embedded_database,
    mail_env,
    settle,
    start_mail_worker,
    start_named_api,
)
from tests.support.mail_replies import AUTO_REPLY_STYLES, WebhookPoster, auto_reply, post_raw
from tests.support.processes import Processes
from tests.support.smtp import Received, SmtpServer

SUPPORT = "support@furiwake.example"
RESPONDER = ("山田 太郎", "taro@example.jp")
MAX_PER_HOUR = 3
# (mails the SMTP server accepted, posts its handler made, stored counts: core/orm rows per kind)
State = tuple[int, int, tuple[tuple[str, int], ...]]
QUIET, LIMIT = 6.0, 90.0  # no change for QUIET seconds means stopped; still changing after LIMIT is a loop


@pytest.fixture
def servers() -> Iterator[list[SmtpServer]]:
    """SMTP servers a test makes (with handlers of its own), stopped at the end."""
    made: list[SmtpServer] = []
    yield made
    for server in made:
        server.stop()


def _serve(servers: list[SmtpServer], on_mail: Callable[[Received], None]) -> SmtpServer:
    server = SmtpServer(on_mail=on_mail)
    server.start()
    servers.append(server)
    return server


def _first_mail(sender: str, recipient: str) -> bytes:
    return to_mime(TestMail(sender=sender, recipient=recipient, subject="ログインできません",
                            body="パスワードを再設定したのに、ログインできません。確認をお願いします。",
                            message_id=f"<first-{sender.split('@')[0]}@mail.example.jp>"))  # fmt: skip


@pytest.mark.parametrize("style", AUTO_REPLY_STYLES)
def test_an_auto_responder_answering_every_mail_stops_after_a_few(
    style: str, processes: Processes, servers: list[SmtpServer], tmp_path: Path
) -> None:
    poster = WebhookPoster()
    answered: list[int] = []

    def respond(received: Received) -> None:  # the responder's mailbox: it answers everything, at once
        answered.append(len(answered) + 1)
        poster.post(auto_reply(received.message, RESPONDER, style, len(answered)))

    smtp = _serve(servers, respond)
    home = tmp_path / "router"
    database_url = embedded_database(home)
    env = mail_env(database_url, "filesystem://", home / "models", home, smtp.url, f"Support <{SUPPORT}>",
                   ACKNOWLEDGE_MAX_PER_HOUR=str(MAX_PER_HOUR))  # fmt: skip
    start_mail_worker(processes, "router", env, embedded=True)
    poster.base = start_named_api(processes, "router", env)
    store = Store(database_url)
    try:
        seeded = post_raw(poster.base, _first_mail(RESPONDER[1], SUPPORT))
        assert seeded.status_code == 200, seeded.text

        def state() -> State:
            return len(smtp.received), len(poster.snapshot()), tuple(sorted(store.counts().items()))

        def in_flight(now: State) -> bool:  # a mail accepted but not yet posted back, or one not yet sent
            mails, posts, counts = now
            return mails != posts or dict(counts).get("unsent", 0) > 0 or mails == 0

        mails, _posts, _counts = settle(state, in_flight, processes, QUIET, LIMIT)
        counts = store.counts()
        answers = poster.snapshot()
        assert all(status == 200 for status, _ in answers), answers
        acknowledgements = store.messages(kind="acknowledgement")
        assert all(ack.delivery == "sent" for ack in acknowledgements)
        assert all(ack.recipient == RESPONDER[1] for ack in acknowledgements)
        if style == "unmarked":
            # Each answer is a new case from the same address: acknowledged until the hourly limit, then silence.
            assert mails == len(acknowledgements) == MAX_PER_HOUR, (counts, answers)
            assert counts["tickets"] == MAX_PER_HOUR + 1 and "automatic" not in counts, counts
            assert all("automatic" not in answer and not answer.get("threaded") for _, answer in answers)
        else:
            # One acknowledgement, one auto-reply kept on the ticket as automatic mail, and nothing answers that.
            [ticket] = store.tickets()
            assert mails == len(acknowledgements) == 1, (counts, answers)
            [(_, answer)] = answers
            assert answer["id"] == str(ticket.id) and answer["automatic"], answer
            [automatic] = store.messages(kind="automatic")
            assert automatic.ticket_id == ticket.id and automatic.sender == RESPONDER[1]
            assert counts == {"tickets": 1, "acknowledgement": 1, "automatic": 1, "unsent": 0}, counts
    finally:
        store.dispose()


def test_two_installations_answering_each_other_stop(
    processes: Processes, servers: list[SmtpServer], tmp_path: Path
) -> None:
    """Router A's outbound mail is delivered into B's webhook and B's into A's; A's customer is B's MAIL_FROM."""
    address = {"a": "support@a.example", "b": "help@b.example"}
    posters = {"a": WebhookPoster(), "b": WebhookPoster()}
    # Each installation's SMTP server is the other's MX: it hands every mail over to the other's webhook, as is.
    smtp = {"a": _serve(servers, lambda received: posters["b"].post(received.raw)),
            "b": _serve(servers, lambda received: posters["a"].post(received.raw))}  # fmt: skip
    stores: dict[str, Store] = {}
    database: dict[str, str] = {}
    for name in ("a", "b"):
        home = tmp_path / name
        database[name] = embedded_database(home)
        env = mail_env(database[name], "filesystem://", home / "models", home, smtp[name].url,
                       f"Support {name.upper()} <{address[name]}>")  # fmt: skip
        start_mail_worker(processes, name, env, embedded=True)
        posters[name].base = start_named_api(processes, name, env)
        stores[name] = Store(database[name])
    token = agent_token(database["a"])

    def state() -> tuple[State, State]:
        a, b = ((len(smtp[n].received), len(posters[n].snapshot()), tuple(sorted(stores[n].counts().items())))
                for n in ("a", "b"))
        return a, b

    def in_flight(now: tuple[State, State]) -> bool:
        (mails_a, posts_a, counts_a), (mails_b, posts_b, counts_b) = now
        return (mails_a != posts_b or mails_b != posts_a or dict(counts_a).get("unsent", 0) > 0
                or dict(counts_b).get("unsent", 0) > 0)

    try:
        # B's own address writes to A: A opens a ticket and acknowledges it (into B), and B answers nothing.
        seeded = post_raw(posters["a"].base, _first_mail(address["b"], address["a"]))
        assert seeded.status_code == 200, seeded.text
        ticket_id = seeded.json()["id"]
        first = settle(state, lambda now: in_flight(now) or not smtp["a"].received, processes, QUIET, LIMIT)
        assert [len(smtp["a"].received), len(smtp["b"].received)] == [1, 0], first
        [(status, answer)] = posters["b"].snapshot()
        assert status == 200 and answer == {"id": None, "duplicate": False,
                                            "automatic": "Auto-Submitted: auto-replied"}, answer
        assert stores["b"].counts()["tickets"] == 0

        # An agent of A replies by hand (no Auto-Submitted): B opens one ticket from A's address and acknowledges
        # it (into A), In-Reply-To A's reply: at A it is automatic mail, kept on the ticket it answers, that
        # opens, routes and acknowledges nothing: nothing more.
        replied = requests.post(f"{posters['a'].base}/api/v1/tickets/{ticket_id}/replies", timeout=10,
                                json={"body": "ご連絡ありがとうございます。確認いたします。"},
                                headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        assert replied.status_code == 202, replied.text
        settle(state, lambda now: in_flight(now) or len(smtp["b"].received) < 1, processes, QUIET, LIMIT)
        assert [len(smtp["a"].received), len(smtp["b"].received)] == [2, 1]
        assert [status for status, _ in posters["a"].snapshot() + posters["b"].snapshot()] == [200] * 3
        [(_, back_at_a)] = posters["a"].snapshot()
        assert back_at_a["id"] == ticket_id and back_at_a["automatic"] == "Auto-Submitted: auto-replied"
        [b_ticket] = stores["b"].tickets()
        assert b_ticket.customer_email == address["a"] and b_ticket.channel == "email"
        assert stores["a"].counts() == {"tickets": 1, "acknowledgement": 1, "agent_reply": 1, "automatic": 1,
                                        "unsent": 0}
        assert stores["b"].counts() == {"tickets": 1, "acknowledgement": 1, "unsent": 0}
        assert smtp["b"].received[0].message["To"] == address["a"]
    finally:
        for store in stores.values():
            store.dispose()
