"""core.automail on header sets as real mailers and MTAs write them: what is automatic, and what is a person."""

from __future__ import annotations

from email.parser import HeaderParser

import pytest

from core.automail import automatic_reason, is_delivery_report, is_unacknowledgeable_address


def headers_of(block: str) -> list[tuple[str, str]]:
    """A header block as the raw-MIME parsers hand it to intake: (name, value) pairs, in order."""
    return list(HeaderParser().parsestr(block.strip() + "\n\n").items())


# Outlook / Exchange Online, an ordinary mail a person wrote: X-Auto-Response-Suppress rides on every Outlook mail
# (it asks OTHERS not to auto-reply) and must not make it automatic.
OUTLOOK_PERSON = """
From: =?iso-2022-jp?b?GyRCOWI2NhsoQiAbJEIyVjtSGyhC?= <hanako@takahashi-shoten.example>
To: Furiwake Support <support@furiwake.example>
Subject: RE: [T-7KQ2M9XA] お支払い方法について
Thread-Topic: [T-7KQ2M9XA] お支払い方法について
Thread-Index: AQHaoXk2Y3N0b3JlZ2lzdGVyZWQ=
Date: Thu, 2 May 2024 00:03:40 +0000
Message-ID: <TYCP286MB1234AB@TYCP286MB1234.JPNP286.PROD.OUTLOOK.COM>
In-Reply-To: <ack-1@furiwake.test>
References: <ack-1@furiwake.test>
Accept-Language: ja-JP, en-US
X-MS-Has-Attach:
X-MS-TNEF-Correlator:
X-Auto-Response-Suppress: All
Content-Type: text/plain; charset="iso-2022-jp"
MIME-Version: 1.0
"""

# Exchange's automatic reply (out of office), Japanese client: Auto-Submitted and the 自動応答 subject.
EXCHANGE_OOO = """
From: =?iso-2022-jp?b?GyRCOWI2NhsoQiAbJEIyVjtSGyhC?= <hanako@takahashi-shoten.example>
To: Furiwake Support <support@furiwake.example>
Subject: =?iso-2022-jp?b?GyRCPCtGMDF+RXobKEI=?=: [T-7KQ2M9XA]
 =?iso-2022-jp?b?GyRCJCo7WUonJCRKfUshJEskRCQkJEYbKEI=?=
Thread-Topic: [T-7KQ2M9XA] お支払い方法について
Date: Fri, 3 May 2024 01:00:02 +0000
Message-ID: <OOO-TYCP286MB1234@TYCP286MB1234.JPNP286.PROD.OUTLOOK.COM>
In-Reply-To: <ack-1@furiwake.test>
References: <ack-1@furiwake.test>
Auto-Submitted: auto-replied
X-MS-Exchange-Inbox-Rules-Loop: hanako@takahashi-shoten.example
X-Auto-Response-Suppress: All
X-MS-Exchange-Generated-Message-Source: Mailbox Rules Agent
Content-Type: text/plain; charset="iso-2022-jp"
MIME-Version: 1.0
"""

# Gmail's vacation responder.
GMAIL_VACATION = """
MIME-Version: 1.0
From: Ken Nakamura <ken.nakamura@example.org>
Date: Mon, 6 May 2024 21:15:00 +0900
Message-ID: <CAJ8pLq-vacation-1@mail.gmail.com>
Subject: Re: [T-7KQ2M9XA] ログインできません
To: support@furiwake.example
In-Reply-To: <ack-2@furiwake.test>
References: <ack-2@furiwake.test>
Auto-Submitted: auto-replied
Precedence: bulk
X-Autoreply: yes
Content-Type: text/plain; charset="UTF-8"
"""

# A Japanese ISP's webmail auto-responder: no RFC 3834 header at all, only the subject says it.
JP_AUTORESPONDER = """
From: tanaka@example.ne.jp
To: support@furiwake.example
Subject: 自動返信: [T-7KQ2M9XA] 請求書の再発行
Date: Tue, 7 May 2024 09:00:00 +0900
Message-ID: <20240507090000.auto@example.ne.jp>
Content-Type: text/plain; charset=ISO-2022-JP
"""

# A mailing list (Mailman 3) distributing a post to our support address.
MAILMAN_POST = """
From: Someone <someone@example.com>
To: users@lists.example.com
Subject: [users] 新バージョンのお知らせ
Date: Tue, 7 May 2024 10:00:00 +0900
Message-ID: <post-1@example.com>
List-Id: Users of Example <users.lists.example.com>
List-Unsubscribe: <mailto:users-leave@lists.example.com>
List-Post: <mailto:users@lists.example.com>
Precedence: list
Content-Type: text/plain; charset=utf-8
"""

# A marketing newsletter: Precedence: bulk and nothing else automatic about it.
NEWSLETTER = """
From: Example Shop <news@shop.example>
To: support@furiwake.example
Subject: 【週末限定】ポイント10倍キャンペーン
Date: Sat, 11 May 2024 08:00:00 +0900
Message-ID: <nl-20240511@shop.example>
Precedence: bulk
Content-Type: text/html; charset=utf-8
"""

# Postfix's delivery status notification for a reply we sent to a mistyped address.
POSTFIX_BOUNCE = """
Return-Path: <>
Date: Wed,  8 May 2024 12:00:05 +0900 (JST)
From: MAILER-DAEMON@mx.furiwake.example (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: support@furiwake.example
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="4VxK2d0Zq1z9s.1715137205/mx.furiwake.example"
Message-Id: <20240508030005.4VxK2d0Zq1z9s@mx.furiwake.example>
"""

# Exim's bounce: no Auto-Submitted, X-Failed-Recipients and the report content type.
EXIM_BOUNCE = """
From: Mail Delivery System <Mailer-Daemon@mail.example.net>
To: support@furiwake.example
Subject: Mail delivery failed: returning message to sender
Message-Id: <E1s4abc-0001Xy-Ab@mail.example.net>
X-Failed-Recipients: taro@exampel.jp
Content-Type: multipart/report; report-type=delivery-status; boundary=1715137205-eximdsn-1234
MIME-Version: 1.0
Date: Wed, 08 May 2024 03:00:05 +0000
"""


def content_type(pairs: list[tuple[str, str]]) -> str | None:
    return next((value for name, value in pairs if name.lower() == "content-type"), None)


def reason(block: str, subject: str | None = None) -> str | None:
    pairs = headers_of(block)
    if subject is None:
        subject = next((value for name, value in pairs if name.lower() == "subject"), None)
    return automatic_reason(pairs, subject, content_type(pairs))


def test_outlook_mail_a_person_wrote_is_not_automatic() -> None:
    assert reason(OUTLOOK_PERSON) is None


def test_exchange_out_of_office_is_automatic_by_auto_submitted() -> None:
    assert reason(EXCHANGE_OOO) == "Auto-Submitted: auto-replied"
    # An Exchange rule relayed through a gateway that drops Auto-Submitted: the decoded subject still tells.
    pairs = [pair for pair in headers_of(EXCHANGE_OOO) if pair[0] != "Auto-Submitted"]
    subject = "自動応答: [T-7KQ2M9XA] お支払い方法について"
    assert automatic_reason(pairs, subject, content_type(pairs)) == f"out-of-office subject ({subject})"


def test_gmail_vacation_responder() -> None:
    assert reason(GMAIL_VACATION) == "Auto-Submitted: auto-replied"
    without_auto_submitted = GMAIL_VACATION.replace("Auto-Submitted: auto-replied\n", "")
    assert reason(without_auto_submitted) == "X-Autoreply: yes"


def test_auto_submitted_no_is_a_person() -> None:
    assert reason(OUTLOOK_PERSON + "Auto-Submitted: no\n") is None
    assert reason(OUTLOOK_PERSON + "Auto-Submitted: auto-generated; owner-email=x@example.jp\n") == (
        "Auto-Submitted: auto-generated; owner-email=x@example.jp"
    )


@pytest.mark.parametrize("subject", [
    "自動返信: [T-7KQ2M9XA] 請求書の再発行",
    "【自動返信】お問い合わせありがとうございます",
    "自動応答: [T-7KQ2M9XA] お支払い方法について",
    "【不在】ご連絡ありがとうございます",
    "[不在] 5/3-5/6 不在にしております",
    "不在のお知らせ",
    "不在通知：山田",
    "休暇のお知らせ（5/1〜5/6）",
    "休暇中のため返信が遅れます",
    "（休暇）Re: 請求について",
    "Automatic reply: [T-7KQ2M9XA] Cannot log in",
    "Out of Office: Re: [T-7KQ2M9XA] Cannot log in",
    "Auto-Reply: I am away",
])  # fmt: skip
def test_out_of_office_subjects(subject: str) -> None:
    assert reason(JP_AUTORESPONDER, subject) == f"out-of-office subject ({subject})"


@pytest.mark.parametrize("subject", [
    "Re: 自動返信: [T-7KQ2M9XA] お問い合わせを受け付けました",  # a person answering an auto-reply of ours
    "返信: 【自動返信】お問い合わせ受付のお知らせ",
    "不在票が入っていましたが再配達の依頼方法は？",  # a missed-delivery slip: a real question
    "休暇明けに請求書を送ってください",
    "在庫の自動返信メールが届きません",
    "Re: [T-7KQ2M9XA] 不在のお知らせについて",
    "About my out of office settings",
    None,
])  # fmt: skip
def test_customer_subjects_that_mention_absence_are_not_automatic(subject: str | None) -> None:
    assert reason(OUTLOOK_PERSON, subject) is None


def test_mailing_list() -> None:
    assert reason(MAILMAN_POST) == "Precedence: list"
    no_precedence = MAILMAN_POST.replace("Precedence: list\n", "")
    assert reason(no_precedence) == "mailing list (List-Id: Users of Example <users.lists.example.com>)"
    only_unsubscribe = no_precedence.replace("List-Id: Users of Example <users.lists.example.com>\n", "")
    assert reason(only_unsubscribe) == "mailing list (List-Unsubscribe: <mailto:users-leave@lists.example.com>)"


def test_precedence_bulk_junk_list() -> None:
    assert reason(NEWSLETTER) == "Precedence: bulk"
    assert reason(NEWSLETTER.replace("Precedence: bulk", "Precedence: junk")) == "Precedence: junk"
    assert reason(NEWSLETTER.replace("Precedence: bulk", "Precedence: first-class")) is None


def test_postfix_bounce_is_a_delivery_report_though_marked_auto_submitted() -> None:
    found = reason(POSTFIX_BOUNCE)
    assert found == "delivery report (multipart/report; report-type=delivery-status)"
    assert is_delivery_report(found)
    pairs = [pair for pair in headers_of(POSTFIX_BOUNCE) if pair[0] != "Content-Type"]
    assert automatic_reason(pairs, None, None) == "delivery report (From: MAILER-DAEMON@mx.furiwake.example)"


def test_exim_bounce() -> None:
    found = reason(EXIM_BOUNCE)
    assert found == "delivery report (multipart/report; report-type=delivery-status)"
    pairs = [pair for pair in headers_of(EXIM_BOUNCE) if pair[0] != "Content-Type"]
    assert automatic_reason(pairs, None, None) == "delivery report (X-Failed-Recipients: taro@exampel.jp)"


def test_null_return_path_is_automatic_but_no_bounce() -> None:
    """RFC 3834 asks auto-replies to use the null sender as well: it says "a machine", not "undelivered"."""
    found = automatic_reason([("Return-Path", "<>")], "Re: ご質問", None)
    assert found is not None and found.startswith("null Return-Path")
    assert not is_delivery_report(found)
    # An out-of-office with a null sender is an auto-reply, never taken for a bounce of the mail it answers.
    ooo = automatic_reason([("Return-Path", "<>"), ("Auto-Submitted", "auto-replied")], None, None)
    assert ooo == "Auto-Submitted: auto-replied" and not is_delivery_report(ooo)


def test_bounce_known_only_by_mailer_daemon() -> None:
    assert automatic_reason([("From", "postmaster@example.jp")], "ご相談", None) is None  # a person's role address
    by_sender = automatic_reason([("From", "Mail Delivery Subsystem <mailer-daemon@googlemail.com>")], None, None)
    assert by_sender == "delivery report (From: mailer-daemon@googlemail.com)"
    assert is_delivery_report(by_sender)
    assert not is_delivery_report("Auto-Submitted: auto-replied")
    assert not is_delivery_report(None)


def test_content_type_alone_decides_a_report() -> None:
    receipt = automatic_reason({}, None, "multipart/report; report-type=disposition-notification; boundary=x")
    assert receipt == "report (multipart/report; report-type=disposition-notification)"
    assert not is_delivery_report(receipt)  # a read receipt says the mail arrived
    assert automatic_reason({}, None, "multipart/mixed; boundary=x") is None
    assert automatic_reason({}, None, "text/plain; charset=utf-8") is None


def test_a_mapping_works_as_well_as_pairs() -> None:
    assert automatic_reason({"X-Autorespond": "1"}, None, None) == "X-Autorespond: 1"
    assert automatic_reason({"X-Autoreply": "no"}, None, None) is None
    assert automatic_reason({"x-auto-response-suppress": "OOF, AutoReply"}, None, None) is None


@pytest.mark.parametrize("address", [
    None, "", "not-an-address",
    "noreply@example.com", "no-reply@accounts.example.com", "NoReply+abc@example.com", "do-not-reply@example.jp",
    "donotreply@example.jp", "MAILER-DAEMON@mx.example.net", "postmaster@example.org", "bounces+123@mg.example.com",
    "users-request@lists.example.com", "owner-users@lists.example.com", "users-bounces@lists.example.com",
    "support@furiwake.example", "Support <SUPPORT@Furiwake.Example>",
])  # fmt: skip
def test_unacknowledgeable_addresses(address: str | None) -> None:
    assert is_unacknowledgeable_address(address, ["support@furiwake.example", "help@furiwake.example"])


@pytest.mark.parametrize("address", [
    "taro.yamada@example.jp", "Taro <taro.yamada@example.jp>", "reply@example.com", "norman@example.com",
    "postmaster-kun@example.jp", "support@other.example",
])  # fmt: skip
def test_people_may_be_acknowledged(address: str) -> None:
    assert not is_unacknowledgeable_address(address, ["support@furiwake.example"])


@pytest.mark.parametrize("value", ["multipart/report; report-type=\ud800", "\x00;;==", "multipart/report",
                                   'Multipart/Report; Report-Type="Delivery-Status"'])  # fmt: skip
def test_any_content_type_a_sender_writes_is_judged_without_error(value: str) -> None:
    found = automatic_reason([("Content-Type", value)], None, None)
    assert found is None or found.startswith(("report", "delivery report"))
    assert (found == "delivery report (multipart/report; report-type=delivery-status)") == ("Delivery" in value)
