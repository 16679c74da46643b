"""Every clean-up rule of core.text, by name, and the MeCab tokenizer on known sentences."""

from __future__ import annotations

import pytest

from core import text


def test_rules_are_named_and_ordered():
    names = [name for name, _ in text.RULES]
    assert names[0] == "normalize_unicode" and names[-1] == "fold_whitespace"
    assert {"drop_quoted_reply", "drop_signature", "drop_emails", "drop_urls", "drop_phone_numbers",
            "drop_separator_runs", "zero_digits"} <= set(names)


def test_prototype_example_keeps_its_sentence():
    cleaned = text.clean("長らくお時間を頂戴しております。version: 1.2.3 ----------------------------------------")
    assert cleaned.startswith("長らくお時間を頂戴しております。")
    assert "-" * 2 not in cleaned and "1" not in cleaned


@pytest.mark.parametrize(("raw", "expected"), [
    ("ＩＤとﾊﾟｽﾜｰﾄﾞ", "IDとパスワード"),
    ("１２３", "123"),
    ("＝＝＝", "==="),
])
def test_normalize_unicode(raw, expected):
    assert text.normalize_unicode(raw) == expected


def test_drop_quoted_reply_lines_and_headers():
    raw = "届きません。\n> 先日のご案内\n>> さらに前\nよろしく\nOn Mon, 1 Jan 2024 Support <s@example.com> wrote:\nold"
    assert text.drop_quoted_reply(raw).split() == ["届きません。", "よろしく"]
    raw = "返金は？\n-----Original Message-----\nFrom: shop\n本文"
    assert text.drop_quoted_reply(raw).strip() == "返金は？"
    reply = "返信です\n2024年5月1日 10:00 山田 さんは書きました:\n> 前のメール"
    assert text.drop_quoted_reply(reply).strip() == "返信です"


def test_quote_headers_need_their_colon_and_gmail_japanese_header_is_one():
    body = "アプリのエラーのメッセージ\n画面が真っ白です"
    assert text.drop_quoted_reply(body) == body
    mail = "届きました\n2024年5月1日(水) 10:00 山田 太郎 <taro@example.jp>:\n以前の本文"
    assert text.drop_quoted_reply(mail).strip() == "届きました"


def test_drop_signature_after_rfc_delimiter_and_after_separator():
    assert text.drop_signature("ログインできません\n-- \n山田\n何でも").strip() == "ログインできません"
    raw = "カードが使えません。\n\n━━━━━━━━\n山田太郎\n株式会社テスト\nTEL 03-5555-0123"
    assert text.drop_signature(raw).strip() == "カードが使えません。"


def test_drop_signature_keeps_a_request_that_mentions_a_phone():
    assert text.drop_signature("How do I change my phone number?") == "How do I change my phone number?"
    long_tail = "本文\n-----\n" + "\n".join(f"手順{i}の説明です" for i in range(10)) + "\n株式会社テスト"
    kept = text.drop_signature(long_tail)  # ten lines after the separator: a body, not a signature
    assert "手順9の説明です" in kept and "株式会社" not in kept


def test_drop_signature_trailing_contact_lines_without_separator():
    assert text.drop_signature("注文の件です\nTEL: 03-5555-0123\nyamada@example.jp").strip() == "注文の件です"


def test_drop_emails_keeps_the_japanese_around_it():
    assert text.drop_emails("IDはabc.d+e@example.co.jpです") == "IDは です"


def test_drop_urls():
    dropped = text.drop_urls("詳細 https://example.com/a?b=1&c=2 と www.example.jp/x を見て")
    assert dropped.split() == ["詳細", "と", "を見て"]


@pytest.mark.parametrize("phone", ["090-1234-5678", "03-5555-0123", "(03) 5555-0123", "+81 90-1234-5678",
                                   "09012345678"])
def test_drop_phone_numbers(phone):
    assert text.drop_phone_numbers(f"電話 {phone} まで").split() == ["電話", "まで"]


def test_phone_rule_leaves_order_numbers_and_versions():
    assert text.drop_phone_numbers("注文番号 A1234567 version 1.2.3") == "注文番号 A1234567 version 1.2.3"


def test_drop_separator_runs():
    assert text.drop_separator_runs("a ----- b ===== c ━━━ d a-b").split() == ["a", "b", "c", "d", "a-b"]


def test_zero_digits_and_lowercase_and_whitespace():
    assert text.zero_digits("v1.2.3 注文12") == "v0.0.0 注文00"
    assert text.lowercase("Login ERROR") == "login error"
    assert text.fold_whitespace("  a \n\n b\t c ") == "a b c"


@pytest.mark.parametrize("raw", ["", "   ", "-----\n=====", "https://example.com", "> quoted\n> only"])
def test_empty_results(raw):
    assert text.clean(raw) == ""


def test_tokenize_japanese_known_sentence():
    assert text.tokenize("パスワードを忘れてログインできません") == [
        "パスワード", "を", "忘れ", "て", "ログ", "イン", "でき", "ませ", "ん"]


def test_drop_symbols():
    assert text.drop_symbols("ログイン！？ 😭 can't (A_B)").split() == ["ログイン", "can", "t", "A", "B"]


def test_tokenize_english_after_cleanup_drops_punctuation_and_emoji():
    assert text.tokenize(text.clean("I can't log in!! 😭")) == ["i", "can", "t", "log", "in"]
    assert text.tokenize("。！？") == []


def test_prepare_is_the_one_pipeline():
    assert text.prepare("ＩＤを忘れました。\n> 前回の回答\nTEL: 03-5555-0123") == "id を 忘れ まし た"
    assert text.prepare("") == ""
