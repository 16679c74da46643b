"""The stored body holds the customer's words only: quotes, quote headers and signatures as Japanese and English
mail clients write them are removed; hyphen lists, closing greetings and text mentioning markup are kept."""

from __future__ import annotations

import pytest

from api.email.htmltext import html_to_text
from api.email.reply import customer_words

QUOTE = "> お問い合わせありがとうございます。\n> ご確認ください。\n"

CASES = [
    ("Gmail (ja) header",
     "先月の請求が二重です。\n\n2024年5月1日(水) 10:00 サポート <support@example.jp>:\n" + QUOTE,
     "先月の請求が二重です。"),
    ("Gmail (ja) header wrapped over two lines",
     "返金はいつですか。\n\n2024年5月1日(水) 10:00 Furiwake サポートチーム <\nsupport@example.jp>:\n\n" + QUOTE,
     "返金はいつですか。"),
    ("full-width quote marks",
     "パスワードを再設定できません。\n\n＞ お問い合わせありがとうございます。\n＞ 手順をご確認ください。\n",
     "パスワードを再設定できません。"),
    ("Original Message",
     "ログインできません。\n\n-----Original Message-----\nFrom: support@example.jp\nSent: Wednesday, May 1, 2024\n"
     "To: taro@example.jp\nSubject: RE: test\n\n前回の回答です。\n",
     "ログインできません。"),
    ("元のメッセージ",
     "解約したいです。\n\n-----元のメッセージ-----\n差出人: support\n本文\n",
     "解約したいです。"),
    ("Outlook (ja) header block",
     "ログインできません。\n\n差出人: サポート <support@example.jp>\n送信日時: 2024年5月1日 10:00\n"
     "宛先: taro@example.jp\n件名: RE: test\n\n前回の回答です。\n",
     "ログインできません。"),
    ("Thunderbird (ja)",
     "支払い方法を変えたい。\n\n2024/05/01 10:00 に サポート さんは書きました:\n> 前回\n",
     "支払い方法を変えたい。"),
    ("English On ... wrote: and sign-off",
     "I can't log in.\n\nThanks,\nJohn\n\nOn Wed, May 1, 2024 at 10:00 AM Support <s@example.com> wrote:\n> Hi\n",
     "I can't log in."),
    ("-- signature",
     "請求書をください。\n\n--\n山田太郎\n株式会社サンプル\nTEL: 03-1234-5678\n",
     "請求書をください。"),
    ("rule-line signature block",
     "カードを更新したいです。\nよろしくお願いいたします。\n\n━━━━━━━━━━━━━━━\n株式会社サンプル 経理部\n山田 太郎\n"
     "TEL: 03-1234-5678\nMail: taro@example.co.jp\n━━━━━━━━━━━━━━━\n",
     "カードを更新したいです。\nよろしくお願いいたします。"),
    ("name block after the closing greeting",
     "アカウントがロックされました。\n\nよろしくお願いいたします。\n\n山田 太郎\n営業部\n",
     "アカウントがロックされました。\n\nよろしくお願いいたします。"),
    ("trailing contact lines",
     "領収書を発行してください。\n山田\nTEL 03-1234-5678\n",
     "領収書を発行してください。\n山田"),
    ("sent from a phone",
     "請求書を再発行してください。\n\niPhoneから送信",
     "請求書を再発行してください。"),
    ("interleaved answers",
     "> 注文番号を教えてください。\nA12345です。\n> お届け先は？\n東京都です。\n",
     "A12345です。\n東京都です。"),
    ("forward with a comment",
     "下記の注文で二重に請求されました。\n\n---------- 転送されたメッセージ ---------\n"
     "From: Shop <shop@example.com>\n\nご注文ありがとうございます。\n",
     "下記の注文で二重に請求されました。"),
    ("forward with nothing written above: the forwarded mail is the request",
     "---------- Forwarded message ---------\nFrom: Shop <shop@example.com>\nDate: 2024年5月1日(水) 10:00\n"
     "Subject: ご注文の確認\nTo: <taro@example.jp>\n\nご注文ありがとうございます。注文番号 A123\n",
     "ご注文ありがとうございます。注文番号 A123"),
    ("hyphen lists are no signature",
     "以下の点を教えてください。\n- 料金\n- 解約方法\nよろしくお願いします。\n",
     "以下の点を教えてください。\n- 料金\n- 解約方法\nよろしくお願いします。"),
    ("a sentence after the greeting stays",
     "解約したいです。\nよろしくお願いします。\n追伸：明日までにご連絡ください。\n",
     "解約したいです。\nよろしくお願いします。\n追伸：明日までにご連絡ください。"),
    ("details after the greeting stay",
     "返金してください。\nよろしくお願いします。\n注文番号: 12345\n",
     "返金してください。\nよろしくお願いします。\n注文番号: 12345"),
    ("title and contact block after the greeting",
     "返金してください。\nよろしくお願いします。\n\n経理部 山田\nyamada@example.jp\n",
     "返金してください。\nよろしくお願いします。"),
    ("markup in the text is words",
     "<script>alert('x')</script> ログインできません",
     "<script>alert('x')</script> ログインできません"),
    ("only a quote", "\n2024年5月1日(水) 10:00 サポート <support@example.jp>:\n" + QUOTE, ""),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_customer_words(text: str, expected: str) -> None:
    assert customer_words(text) == expected


def test_crlf_bodies_are_handled() -> None:
    assert customer_words("支払いについて\r\n\r\n> 引用\r\n") == "支払いについて"


def test_html_keeps_words_and_drops_quotes_signature_and_code() -> None:
    html = (
        '<html><head><style>p{}</style><title>t</title></head><body><div dir="ltr">'
        "<div>お世話になっております。<br>ログインが<b>できません</b>。</div><div><br></div>"
        "<div>&lt;script&gt;alert(1)&lt;/script&gt;</div><script>alert(2)</script>"
        '<div class="gmail_signature">--<br>山田</div>'
        '<div class="gmail_quote"><div class="gmail_attr">2024年5月1日(水) 10:00 サポート:</div>'
        "<blockquote>前回の回答</blockquote></div></div></body></html>"
    )
    assert html_to_text(html) == "お世話になっております。\nログインができません。\n\n<script>alert(1)</script>"


def test_outlook_html_reply_header_and_everything_after_it_go() -> None:
    html = (
        "<div>支払いについて</div><div id=\"appendonsend\"></div><hr>"
        '<div id="divRplyFwdMsg"><b>From:</b> support</div><div>quoted old message</div>'
    )
    assert html_to_text(html) == "支払いについて"


def test_html_paragraphs_and_source_line_breaks() -> None:
    assert html_to_text("<p>A\nB</p><p>C</p>") == "A B\n\nC"
