"""core.quoting is the one quote/signature stripper: the e-mail intake and the model's clean-up cut the same way.

Each case is a rule only one of the two former strippers knew; both entry points must now apply it.
"""

from __future__ import annotations

import pytest

from core import quoting, text

UNIFIED = [
    # from the former e-mail stripper, now also in the model's clean-up
    ("Outlook (ja) header block",
     "ログインできません。\n差出人: サポート\n送信日時: 2024年5月1日\n宛先: taro\n件名: RE\n前回",
     "ログインできません。"),
    ("full-width quote marks", "再設定できません。\n＞ 前回の回答\n≫ さらに前", "再設定できません。"),
    ("sent from a phone", "請求書をください。\n\niPhoneから送信", "請求書をください。"),
    ("name block after the closing greeting", "ロックされました。\nよろしくお願いいたします。\n\n山田 太郎\n営業部",
     "ロックされました。\nよろしくお願いいたします。"),
    # from the former clean-up rules, now also for e-mail
    ("any short line ending in <address>:", "届きました\nサポート窓口 <support@example.jp>:\n以前の本文", "届きました"),
    ("… のメッセージ: header", "解約したいです\n2024/05/01 山田のメッセージ:\n前回の本文", "解約したいです"),
    ("RFC delimiter with a non-contact tail", "ログインできません\n-- \n山田\n何でも", "ログインできません"),
]  # fmt: skip


@pytest.mark.parametrize(("raw", "expected"), [case[1:] for case in UNIFIED], ids=[case[0] for case in UNIFIED])
def test_both_entry_points_apply_every_rule(raw, expected):
    assert quoting.customer_words(raw) == expected
    assert text.clean(raw) == text.clean(expected)


def test_mail_clients_reply_formats_are_read_once_at_intake():
    """mail-parser-reply's pass (English sign-offs and the like) runs on a mail body at intake, where the stored
    body is already stripped; the per-ticket clean-up leaves it out (it would cost four times the clean-up)."""
    raw = "I can't log in.\n\nThanks,\nJohn"
    assert quoting.customer_words(raw) == "I can't log in."
    assert "john" in text.clean(raw)  # the clean-up lower-cases


def test_two_header_lines_a_customer_copied_are_not_a_quote():
    raw = ("またメールが届きました。\n━━━━━━\nFrom: info@example-shop.jp\n件名: セール開催中\n━━━━━━\n"
           "退会した人に送るのはおかしくないですか。")
    assert quoting.customer_words(raw).endswith("退会した人に送るのはおかしくないですか。")


def test_a_box_of_signature_lines_goes_but_a_quoted_newsletter_keeps_its_text():
    boxed = "更新したいです。\n━━━━━━\n株式会社サンプル\n山田 太郎\nTEL: 03-1234-5678\n━━━━━━\n"
    assert quoting.customer_words(boxed) == "更新したいです。"
    named_box = "更新したいです。\n――――\n山田 太郎\n――――\nTEL: 03-1234-5678"
    assert quoting.customer_words(named_box) == "更新したいです。"
    newsletter = "月刊 通信 12月号\n――――――\n■特集: 採用戦略\n■連載: 数字に強くなる\n――――――\n発行: 編集部 https://example.jp"
    assert "■連載: 数字に強くなる" in quoting.customer_words(newsletter)


def test_a_forward_with_nothing_above_is_the_request_in_the_clean_up_too():
    raw = "---------- Forwarded message ---------\nFrom: Shop <shop@example.com>\nSubject: 確認\n\n注文番号 A123 の件"
    assert quoting.customer_words(raw) == "注文番号 A123 の件"
    assert text.clean(raw) == text.clean("注文番号 A123 の件") != ""


def test_a_contact_line_that_ends_a_sentence_is_kept():
    assert quoting.drop_signature("注文の件です\n電話: 03-5555-0123 に電話しても繋がりません。") == (
        "注文の件です\n電話: 03-5555-0123 に電話しても繋がりません。")
