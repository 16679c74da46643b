"""Bytes → text for Japanese mail as it really arrives: wrong labels, vendor extensions, no label at all.

Japanese mailers label cp932 text "Shift_JIS" and put NEC/IBM characters (①, ㈱, 髙) into "ISO-2022-JP"; Python's
strict codecs refuse both. So each declared charset has a chain of fallbacks, and a label nobody knows (or a
declared charset the bytes do not fit) is guessed among utf-8, ISO-2022-JP, cp932 and EUC-JP. Every fallback is
reported as a note, so the inbound log says how a mail was read. Text that no candidate makes readable raises
Undecodable: the mail is rejected instead of storing mojibake.
"""

from __future__ import annotations

import codecs
import unicodedata
from dataclasses import dataclass

# Labels seen in the wild that Python does not know, mapped to the codec that reads them.
_ALIASES = {
    "x-sjis": "shift_jis",
    "shift-jis": "shift_jis",
    "windows-31j": "cp932",
    "sjis-win": "cp932",
    "sjis-open": "cp932",
    "x-euc-jp": "euc_jp",
    "x-euc": "euc_jp",
    "eucjp-ms": "euc_jp",
    "eucjp-win": "euc_jp",
    "euc-jp-ms": "euc_jp",
    "iso-2022-jp-ms": "iso2022_jp",
    "cp50220": "iso2022_jp",
    "cp50221": "iso2022_jp",
    "cp50222": "iso2022_jp",
    "utf8": "utf-8",
}
# Labels that say nothing about the bytes: treated like a missing label.
_NO_LABEL = {"", "unknown-8bit", "x-unknown", "unknown", "8bit", "binary", "default"}
ISO2022JP_MS = "iso2022_jp_ms"  # our cp932-based reader for ISO-2022-JP with Windows characters (CP50221)
# What to try, in order, when the declared codec refuses the bytes.
_CHAINS = {
    "shift_jis": ("shift_jis", "cp932", "shift_jis_2004"),
    "cp932": ("cp932", "shift_jis_2004"),
    "iso2022_jp": ("iso2022_jp", "iso2022_jp_ext", "iso2022_jp_2", ISO2022JP_MS, "iso2022_jp_2004"),
    "iso2022_jp_1": ("iso2022_jp_1", "iso2022_jp_ext", "iso2022_jp_2", ISO2022JP_MS),
    "iso2022_jp_2": ("iso2022_jp_2", "iso2022_jp_ext", ISO2022JP_MS),
    "iso2022_jp_ext": ("iso2022_jp_ext", "iso2022_jp_2", ISO2022JP_MS),
    "euc_jp": ("euc_jp", "euc_jis_2004"),
    "utf-8": ("utf-8",),
}
_GUESSES = ("utf-8", ISO2022JP_MS, "cp932", "euc_jp")
# Above this share of unreadable characters (controls, private use, U+FFFD) a guess is not text; a few are
# always tolerated, so one damaged byte does not cost a short mail.
UNREADABLE_LIMIT = 0.05
UNREADABLE_ALWAYS_OK = 6


class Undecodable(ValueError):
    """No charset makes these bytes readable text."""


@dataclass(frozen=True)
class Decoded:
    text: str
    codec: str
    note: str | None = None  # set when the text was not read as its label says


def canonical(label: str | None) -> str | None:
    """Python's codec name for a MIME charset label; None when the label is missing, unknown or not a text codec."""
    name = (label or "").strip().strip("\"'").lower()
    if name in _NO_LABEL:
        return None
    name = _ALIASES.get(name, name)
    try:
        info = codecs.lookup(name)
    except LookupError:
        return None
    if not getattr(info, "_is_text_encoding", True):  # base64, zlib, rot13: codecs, but not charsets
        return None
    return info.name


def decode_iso2022jp_ms(data: bytes) -> str:
    """ISO-2022-JP as Windows writes it (CP50221): JIS X 0208 rows plus NEC/IBM rows, read through cp932.

    Each two-byte JIS code maps arithmetically to Shift_JIS, and cp932 knows the vendor rows that Python's
    iso2022 codecs refuse. ESC ( I (half-width katakana) maps to the single-byte cp932 range.
    """
    out: list[str] = []
    mode = "ascii"
    i = 0
    while i < len(data):
        if data[i] == 0x1B:
            seq = data[i + 1 : i + 3]
            if seq in (b"(B", b"(J"):
                mode, i = "ascii", i + 3
            elif seq in (b"$B", b"$@"):
                mode, i = "jis", i + 3
            elif seq == b"(I":
                mode, i = "kana", i + 3
            else:
                raise UnicodeDecodeError(ISO2022JP_MS, data, i, i + 3, "unsupported escape sequence")
            continue
        byte = data[i]
        if byte in (0x0A, 0x0D) or mode == "ascii":
            if byte > 0x7F:
                raise UnicodeDecodeError(ISO2022JP_MS, data, i, i + 1, "8-bit byte in ISO-2022-JP")
            out.append(chr(byte))
            i += 1
        elif mode == "kana":
            out.append(bytes([byte + 0x80]).decode("cp932"))
            i += 1
        else:
            if i + 1 >= len(data) or not (0x21 <= byte <= 0x7E and 0x21 <= data[i + 1] <= 0x7E):
                raise UnicodeDecodeError(ISO2022JP_MS, data, i, i + 2, "invalid JIS code")
            out.append(_jis_to_sjis(byte, data[i + 1]).decode("cp932"))
            i += 2
    return "".join(out)


def _jis_to_sjis(j1: int, j2: int) -> bytes:
    s1 = (j1 + 1) // 2 + (0x70 if j1 <= 0x5E else 0xB0)
    s2 = j2 + (0x1F + (j2 >= 0x60) if j1 % 2 else 0x7E)
    return bytes([s1, s2])


def _decode(data: bytes, codec: str, errors: str = "strict") -> str:
    if codec == ISO2022JP_MS:
        if errors == "strict":
            return decode_iso2022jp_ms(data)
        return data.decode("iso2022_jp_ext", errors)
    text = data.decode(codec, errors)
    return text[1:] if text.startswith("\ufeff") else text


def unreadable(text: str) -> int:
    """Characters no person wrote: controls (other than tab and line breaks), private use, U+FFFD, unassigned."""
    return sum(
        1
        for ch in text
        if ch == "\ufffd" or (unicodedata.category(ch) in ("Cc", "Co", "Cn", "Cs") and ch not in "\t\n\r\f")
    )


def _readable(bad: int, text: str) -> bool:
    return bad <= max(UNREADABLE_ALWAYS_OK, UNREADABLE_LIMIT * len(text)) and bad < len(text) / 2


def _suspicion(text: str) -> int:
    """Unreadable characters, plus half-width katakana: EUC-JP bytes read as cp932 turn into runs of them."""
    return unreadable(text) * 4 + sum(1 for ch in text if "\uff61" <= ch <= "\uff9f")


def decode_bytes(data: bytes, label: str | None) -> Decoded:
    """Decode with the declared charset and its fallbacks; guess when that fails; raise Undecodable if unreadable."""
    declared = canonical(label)
    if declared in (None, "ascii") and data.isascii() and b"\x1b" not in data:
        return Decoded(data.decode("ascii"), "ascii")
    if declared is not None and declared != "ascii":
        for codec in _CHAINS.get(declared, (declared,)):
            try:
                text = _decode(data, codec)
            except (UnicodeDecodeError, LookupError):
                continue
            return Decoded(text, codec, None if codec == declared else f"charset {label} read as {codec}")
    if (label or "").strip().lower() in _NO_LABEL:
        why = "no charset declared"
    elif declared is None:
        why = f"unknown charset {label!r}"
    else:
        why = f"text is not {label}"
    return _guess(data, why)


def _guess(data: bytes, why: str) -> Decoded:
    strict: list[tuple[int, int, str, str]] = []
    for order, codec in enumerate(_GUESSES):
        try:
            text = _decode(data, codec)
        except UnicodeDecodeError:
            continue
        strict.append((_suspicion(text), order, codec, text))
    if strict:
        _, _, codec, text = min(strict)
        if _readable(unreadable(text), text):
            return Decoded(text, codec, f"{why}; read as {codec}")
    lossy = sorted((unreadable(_decode(data, c, "replace")), order, c) for order, c in enumerate(_GUESSES))
    bad, _, codec = lossy[0]
    text = _decode(data, codec, "replace")
    if not text.strip() or not _readable(bad, text):
        raise Undecodable(f"{why}, and no charset makes the text readable")
    return Decoded(text, codec, f"{why}; read as {codec} with {bad} character(s) replaced")
