"""Japanese charsets as mail really carries them: wrong labels, vendor characters, no label, unknown labels."""

from __future__ import annotations

import base64

import pytest

from api.email.charsets import Undecodable, canonical, decode_bytes, decode_iso2022jp_ms
from api.email.headers import decode_header_value, first_address, message_id, parse_address
from tests.api.email.fixtures.make_fixtures import iso2022jp_ms

VENDOR = "①㈱髙～の請求"  # NEC row 13, IBM extension (髙), the cp932 wave dash


def test_shift_jis_label_on_cp932_text_falls_back_to_cp932() -> None:
    decoded = decode_bytes(VENDOR.encode("cp932"), "Shift_JIS")
    assert decoded.text == VENDOR
    assert decoded.codec == "cp932" and decoded.note == "charset Shift_JIS read as cp932"


def test_plain_shift_jis_needs_no_note() -> None:
    decoded = decode_bytes("請求書".encode("shift_jis"), "shift_jis")
    assert (decoded.text, decoded.note) == ("請求書", None)


def test_iso_2022_jp_with_windows_characters_is_read_through_cp932() -> None:
    data = iso2022jp_ms(VENDOR)
    with pytest.raises(UnicodeDecodeError):
        data.decode("iso2022_jp_ext")
    decoded = decode_bytes(data, "ISO-2022-JP")
    assert decoded.text == VENDOR and decoded.codec == "iso2022_jp_ms"


def test_iso_2022_jp_half_width_katakana_and_ascii() -> None:
    assert decode_iso2022jp_ms(b"ID \x1b(I6\x1b(B ok\x1b$B$\"\x1b(B") == "ID ｶ okあ"


@pytest.mark.parametrize("label", ["EUC-JP", "x-euc-jp", "eucJP-ms"])
def test_euc_jp_labels(label: str) -> None:
    assert decode_bytes("ログインできません".encode("euc_jp"), label).text == "ログインできません"


@pytest.mark.parametrize("codec", ["utf-8", "cp932", "euc_jp", "iso2022_jp"])
def test_unknown_label_is_guessed_and_noted(codec: str) -> None:
    text = "パスワードを忘れてログインできません。"
    decoded = decode_bytes(text.encode(codec), "x-user-defined")
    assert decoded.text == text
    assert decoded.note and decoded.note.startswith("unknown charset 'x-user-defined'; read as")


def test_euc_jp_is_not_mistaken_for_half_width_katakana() -> None:
    """EUC-JP bytes are valid cp932 too (as half-width katakana); the guess must prefer the readable one."""
    decoded = decode_bytes("請求書を再発行してください".encode("euc_jp"), None)
    assert decoded.text == "請求書を再発行してください" and decoded.codec == "euc_jp"


def test_wrong_label_is_corrected() -> None:
    decoded = decode_bytes("支払い".encode("cp932"), "utf-8")
    assert decoded.text == "支払い" and decoded.note == "text is not utf-8; read as cp932"


def test_us_ascii_label_on_8bit_text() -> None:
    decoded = decode_bytes("解約".encode(), "us-ascii")
    assert decoded.text == "解約" and decoded.note == "text is not us-ascii; read as utf-8"


def test_ascii_needs_no_guess() -> None:
    assert decode_bytes(b"hello", None).note is None


def test_noise_is_undecodable() -> None:
    with pytest.raises(Undecodable):
        decode_bytes(bytes(range(256)) * 8, "utf-8")


def test_a_few_bad_bytes_are_replaced_and_noted() -> None:
    data = "返金をお願いします。".encode() * 20 + b"\xff"
    decoded = decode_bytes(data, "utf-8")
    assert decoded.text.startswith("返金をお願いします。") and "replaced" in (decoded.note or "")


@pytest.mark.parametrize("label", ["base64", "rot13", "zlib"])
def test_codecs_that_are_not_charsets_count_as_unknown(label: str) -> None:
    assert canonical(label) is None


def test_rfc2047_words_in_several_charsets_and_plain_text() -> None:
    jis = "=?ISO-2022-JP?B?" + base64.b64encode("請求".encode("iso2022_jp")).decode() + "?="
    sjis = "=?shift_jis?B?" + base64.b64encode("㈱髙橋".encode("cp932")).decode() + "?="
    text, notes = decode_header_value(f"Re: {jis} {sjis} =?utf-8?q?=E3=81=AB=E3=81=A4=E3=81=84=E3=81=A6?=")
    assert text == "Re: 請求㈱髙橋について"
    assert notes == ["header: charset shift_jis read as cp932"]


def test_folded_header_is_one_line() -> None:
    assert decode_header_value("=?utf-8?b?6KuL5rGC?=\r\n =?utf-8?b?5pu4?=")[0] == "請求書"


def test_malformed_encoded_word_is_kept_as_text() -> None:
    assert decode_header_value("=?utf-8?B?not base64!?=")[0]


def test_address_with_encoded_name_holding_a_comma() -> None:
    name_word = "=?UTF-8?B?" + base64.b64encode("山田, 太郎".encode()).decode() + "?="
    assert parse_address(f"{name_word} <taro@example.jp>")[:2] == ("山田, 太郎", "taro@example.jp")


def test_address_without_at_sign_is_no_address() -> None:
    assert parse_address("undisclosed-recipients:;")[1] is None


def test_first_address_and_message_id() -> None:
    assert first_address(None, "Support <Support@Furiwake.Example>, other@example.com") == "support@furiwake.example"
    assert message_id("  <abc@example.jp> (comment)") == "<abc@example.jp>"
    assert message_id("bare-id@example.jp") == "bare-id@example.jp"
    assert message_id(None) is None


def test_one_damaged_byte_does_not_cost_a_short_mail() -> None:
    data = bytearray("パスワードを忘れました。".encode())
    data[9] = 0x41  # inside a multi-byte character
    decoded = decode_bytes(bytes(data), "utf-8")
    assert decoded.text.startswith("パスワ") and decoded.text.endswith("を忘れました。")
    assert "replaced" in (decoded.note or "")
