"""Header values → text: RFC 2047 encoded words in any charset, raw 8-bit headers, addresses, Message-IDs."""

from __future__ import annotations

import re
from collections.abc import Iterable
from email.header import Header, decode_header
from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32
from email.utils import getaddresses, parseaddr

from api.email.charsets import Decoded, Undecodable, decode_bytes

_FOLDING = re.compile(r"[ \t]*[\r\n]+[ \t]*")
_MESSAGE_ID = re.compile(r"<[^<>\s]+>")
REPORT_SCAN = 64 * 1024
# An encoded word a mailer folded in the middle (a line break and space inside its encoded text): RFC 2047 forbids
# it, so the stdlib leaves the word undecoded, yet long Japanese subjects arrive like this.
_WHITESPACE = re.compile(r"[ \t\r\n]+")
_BROKEN_WORD = re.compile(r"=\?([^?\s]+)\?([BbQq])\?([^?]*?[ \t\r\n][^?]*?)\?=")


def _join_word(match: re.Match[str]) -> str:
    charset, encoding, text = match.groups()
    return f"=?{charset}?{encoding}?{_WHITESPACE.sub('', text)}?="



def decode_header_value(value: str | Header | None) -> tuple[str, list[str]]:
    """One header → (one line of text, notes on charset fallbacks).

    email.header.decode_header splits encoded words from plain runs; each run is then read with our fallbacks,
    so an encoded word labelled Shift_JIS that is really cp932, or raw Shift_JIS bytes in a header (the parser
    hands them over as surrogates or as an unknown-8bit Header), still come out as text.
    """
    if value is None:
        return "", []
    notes: list[str] = []
    if isinstance(value, str) and "=?" in value:
        value = _BROKEN_WORD.sub(_join_word, value)
    try:
        chunks = decode_header(value)
    except Exception:  # noqa: BLE001 - a malformed encoded word: keep the header as it came
        chunks = [(str(value), None)]
    pieces: list[str] = []
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            if not any("\udc80" <= ch <= "\udcff" for ch in chunk) and "\x1b" not in chunk:
                pieces.append(chunk)
                continue
            # Raw 8-bit bytes, or raw ISO-2022-JP (7-bit escape sequences: Japanese mobile carriers and old mailers
            # put it in Subject and filenames unencoded): read as bytes with our charset guessing.
            chunk, charset = chunk.encode("ascii", "surrogateescape"), None
        try:
            decoded = decode_bytes(chunk, charset)
        except Undecodable:
            decoded = Decoded(chunk.decode("utf-8", "replace"), "utf-8", f"header charset {charset} unreadable")
        pieces.append(decoded.text)
        if decoded.note:
            notes.append("header: " + decoded.note)
    return _FOLDING.sub(" ", "".join(pieces)).strip(), notes


def raw_header(value: str | Header | None) -> str:
    """The header as a str with its encoded words still encoded (raw 8-bit bytes decoded), for address parsing."""
    if value is None:
        return ""
    if isinstance(value, Header):
        return decode_header_value(value)[0]
    if any("\udc80" <= ch <= "\udcff" for ch in value) or "\x1b" in value:
        return decode_header_value(value)[0]
    return _FOLDING.sub(" ", value).strip()


def parse_address(value: str | Header | None) -> tuple[str | None, str | None, list[str]]:
    """`"=?ISO-2022-JP?B?...?=" <taro@example.jp>` → (display name, address, notes).

    The address is split off before the name is decoded, so a decoded name holding a comma or angle bracket
    cannot confuse the split.
    """
    name, address = parseaddr(raw_header(value))
    display, notes = decode_header_value(name) if name else ("", [])
    address = address.strip()
    if "@" not in address or any(ch.isspace() for ch in address) or len(address) > 320:
        return display or None, None, notes
    return display or None, address, notes


def first_address(*values: str | Header | None) -> str | None:
    """The first mailbox address among header values (To, Delivered-To, ...), lowercased."""
    for value in values:
        for _name, address in getaddresses([raw_header(value)]):
            if "@" in address:
                return address.strip().lower()
    return None


def header_list(items: Iterable[tuple[str, str | Header]]) -> list[tuple[str, str]]:
    """Header (name, value) pairs as text, folding undone; encoded words stay encoded (only automail reads them)."""
    return [(str(name), raw_header(value)) for name, value in items]


def part_filename(part: Message) -> tuple[str, list[str]]:
    """A MIME or form part's file name as text: RFC 2231 (`filename*=`, continuations), RFC 2047 words in a quoted
    name, raw 8-bit or ISO-2022-JP bytes (Mailgun and mobile mailers send them unencoded). compat32 hands raw bytes
    back as U+FFFD, so the raw header is read (raw_items) and its bytes decoded with our charset guessing first."""
    probe = Message()
    notes: list[str] = []
    for name, value in part.raw_items():
        if name.lower() not in ("content-disposition", "content-type"):
            continue
        text = str(value)
        if any("\udc80" <= ch <= "\udcff" for ch in text) or "\x1b" in text:
            text, more = decode_header_value(text)
            notes += more
        probe[name] = text
    try:
        raw = probe.get_filename()
    except (LookupError, UnicodeError, ValueError):  # an RFC 2231 charset Python does not know
        raw = None
    if not raw:
        return "", notes
    decoded, more = decode_header_value(raw)
    return decoded, notes + more


def original_message_id(content: bytes | str | None) -> str | None:
    """The Message-ID in the header block of a returned message (a delivery report's message/rfc822 or
    text/rfc822-headers part): which of our mails bounced. Only the first REPORT_SCAN bytes are read."""
    if not content:
        return None
    text = content[:REPORT_SCAN].decode("utf-8", "replace") if isinstance(content, bytes) else content[:REPORT_SCAN]
    return message_id(HeaderParser(policy=compat32).parsestr(text.lstrip("\r\n"), headersonly=True).get("Message-ID"))


def returned_message_id(part: Message) -> str | None:
    """The Message-ID of the mail a delivery report returns, from its message/rfc822 or text/rfc822-headers part;
    None for any other part."""
    ctype = part.get_content_type()
    if ctype not in ("message/rfc822", "text/rfc822-headers"):
        return None
    inner = part.get_payload()
    if isinstance(inner, list) and inner and isinstance(inner[0], Message):
        return message_id(inner[0].get("Message-ID"))
    raw = part.get_payload(decode=True)
    return original_message_id(raw if isinstance(raw, bytes) else None)


def delivery_actions(part: Message) -> list[str]:
    """The `Action` of each recipient in a message/delivery-status part (RFC 3464: failed, delayed, delivered,
    relayed, expanded), lower-cased; the parser splits the part into one header block per recipient."""
    blocks = part.get_payload()
    if not isinstance(blocks, list):
        return []
    return [str(block.get("Action", "")).split(";")[0].strip().lower()
            for block in blocks if isinstance(block, Message) and block.get("Action")]  # fmt: skip


def message_id(value: str | Header | None) -> str | None:
    """`<id@host>` from a Message-ID header (first bracketed token), or the bare value if it has no brackets."""
    text = raw_header(value)
    if not text:
        return None
    match = _MESSAGE_ID.search(text)
    return match.group(0) if match else text.split()[0]
