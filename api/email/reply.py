"""Keep only the customer's words: cut the quoted earlier messages and the signature off a plain-text body.

mail-parser-reply (maintained, several languages) does the generic work: "On ... wrote:", Gmail's Japanese
"2024年5月1日(水) 10:00 山田 <a@example.jp>:", Outlook's English "From:/Sent:" block, "-----Original Message-----",
"--" signatures, "Sent from my iPhone". Tested on Japanese mail it misses what this module adds:
  - full-width "＞" quote marks (normalised to ">"), and quoted lines left in the reply (interleaved answers);
  - Outlook's Japanese header block (差出人: / 送信日時: / 宛先: / 件名:), Thunderbird's "… さんは書きました:",
    "-----元のメッセージ-----", date headers wrapped over two lines;
  - forwarded messages: cut like quotes, except that a forward with nothing written above it *is* the request;
  - Japanese signatures: a block under a rule line (━━━, ―――, ＝＝＝) holding contact details, trailing contact
    lines, a short name block after the closing "よろしくお願いいたします。", "iPhoneから送信".
It is also told to keep hyphen lists ("- 料金"), which its default reads as a "-Name" signature.
core.text cleans again at classification time; the stored body must already be only the customer's words.
"""

from __future__ import annotations

import re

from mailparser_reply import EmailMessage

LANGUAGES = ["ja", "en"]

_FULLWIDTH_QUOTE = re.compile(r"^([ \t\u3000]*)[＞≫]", re.MULTILINE)
_QUOTED_LINE = re.compile(r"^[ \t\u3000]*>.*(?:\n|$)", re.MULTILINE)
_FIELD = r"[ \t*]*(?:差出人|送信者|送信日時|日時|日付|宛先|件名|CC|Cc|From|Sent|To|Subject|Date)[ \t*]*[:：]"
_DATE = r"(?:\d{4}\s*[年/.-]\s*\d{1,2}\s*[月/.-]\s*\d{1,2}\s*日?|\d{1,2}\s*月\s*\d{1,2}\s*日)"
# Lines that open a quoted earlier message (everything from them on goes).
_QUOTE_HEADERS = re.compile(
    "|".join(
        (
            r"^[ \t]*-{2,}\s*(?:original message|元のメッセージ|オリジナル\s*メッセージ)\s*-{2,}[ \t]*$",
            r"^[^\n]{0,200}(?:さん|様)?(?:は|が)書きました\s*[:：]?[ \t]*$",
            r"^[^\n]{0,40}" + _DATE + r"[^\n]{0,160}(?:\n[^\n]{0,120})?(?:>|wrote|書きました)\s*[:：][ \t]*$",
            # Outlook: two or more header lines in a row, the first naming the sender or the date.
            r"^[ \t*]*(?:差出人|送信者|From|日付|送信日時|Date)[ \t*]*[:：][^\n]*\n"
            r"(?:" + _FIELD + r"[^\n]*(?:\n|$))+",
        )
    ),
    re.IGNORECASE | re.MULTILINE,
)
_FORWARD_HEADERS = re.compile(
    r"^[ \t]*-{2,}\s*(?:forwarded message|転送(?:された)?メッセージ|転送メール)\s*-{2,}[ \t]*$"
    r"|^[ \t]*(?:begin forwarded message|転送されたメッセージ)\s*[:：][ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)
_FORWARD_FIELD = re.compile("^" + _FIELD, re.IGNORECASE)
# A rule line as Japanese signatures draw it.
_RULE = re.compile(r"^[ \t\u3000]*(?:[-=_~*#━─═＝－―—]{4,}|[◆◇■□★☆※]{3,}|[-=]{2}[ \t]*)[ \t\u3000]*$", re.MULTILINE)
_CONTACT = re.compile(
    r"[\w.%+-]+@[\w-]+\.|https?://|www\.|(?:\b(?:tel|fax|phone|mobile|e-?mail)\b|電話|携帯|ＴＥＬ)\s*[.:：]|〒|"
    r"株式会社|有限会社|合同会社|\(株\)|（株）|㈱|\b(?:inc|ltd|llc|co)\b\.?|"
    r"\+?\d{1,4}[-\s(（]\d{1,4}[-\s)）]\d{3,4}",
    re.IGNORECASE,
)
_CLOSING = re.compile(r"(?:よろしく|宜しく)お願い(?:いた|致)?(?:します|申し上げます)[。.！!]?\s*$|^以上[。.]?$")
_SENT_FROM = re.compile(r"^[ \t]*(?:.{0,40}から送信|sent from my .{0,40}|get outlook for .{0,40})[ \t]*$", re.I)
_NOT_A_NAME = re.compile(r"[0-9０-９:：?？!！、。]")
_SENTENCE_END = ("。", "？", "?", "！", "!", "：", ":")
SIGNATURE_MAX_LINES = 10
SIGNATURE_MAX_CHARS = 1_000  # a signature block is short; longer tails are not even looked at
LONG_LINE = 200
NAME_BLOCK_MAX_LINES = 6


def customer_words(text: str) -> str:
    """The reply the customer wrote, without quoted messages, quote marks or signature; "" when nothing is left."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _FULLWIDTH_QUOTE.sub(r"\1>", text)
    text = _cut_quotes(text)
    shielded, long_lines = _shield_long_lines(text)
    replies = EmailMessage(text=shielded, languages=list(LANGUAGES), keep_hyphen_lists=True).read().replies
    text = replies[0].body if replies else ""
    for placeholder, line in long_lines.items():
        text = text.replace(placeholder, line)
    text = _QUOTED_LINE.sub("", text)
    text = drop_signature(text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _shield_long_lines(text: str) -> tuple[str, dict[str, str]]:
    """Swap lines longer than LONG_LINE for placeholders while the library runs, and back afterwards.

    The library's "On ... wrote:" pattern backtracks quadratically along a line: one 80,000-character line took
    minutes. No quote header or signature line is that long, so such lines are only ever the customer's text.
    """
    lines = text.split("\n")
    saved: dict[str, str] = {}
    for index, line in enumerate(lines):
        if len(line) > LONG_LINE:
            placeholder = f"\ue000{len(saved)}\ue001"
            saved[placeholder] = line.strip()  # the library strips every line; so does the restored one
            lines[index] = placeholder
    return "\n".join(lines), saved


def _cut_quotes(text: str) -> str:
    """Cut at the first quote header; at a forward header, unless nothing was written above it."""
    quote = _QUOTE_HEADERS.search(text)
    forward = _FORWARD_HEADERS.search(text)
    if forward and (quote is None or forward.start() < quote.start()):
        above = text[: forward.start()]
        if _QUOTED_LINE.sub("", above).strip():
            return above
        return _forwarded_body(text[forward.end() :])
    return text[: quote.start()] if quote else text


def _forwarded_body(text: str) -> str:
    """The forwarded message without its From:/Date:/Subject: lines; cut at its own quotes in turn."""
    lines = text.lstrip("\n").split("\n")
    while lines and (_FORWARD_FIELD.match(lines[0]) or not lines[0].strip()):
        lines.pop(0)
    return _cut_quotes("\n".join(lines))


def drop_signature(text: str) -> str:
    """Japanese signature shapes the library does not know (see the module docstring)."""
    lines = text.rstrip().split("\n")
    while lines and _SENT_FROM.match(lines[-1]):
        lines.pop()
    text = "\n".join(lines)
    for rule in _RULE.finditer(text):
        if len(text) - rule.end() > SIGNATURE_MAX_CHARS:
            continue
        tail = [line for line in text[rule.end() :].split("\n") if line.strip() and not _RULE.match(line)]
        if len(tail) <= SIGNATURE_MAX_LINES and (not tail or _CONTACT.search("\n".join(tail))):
            text = text[: rule.start()]
            break
    lines = text.rstrip().split("\n")
    while len(lines) > 1 and _is_contact_line(lines[-1]):
        lines.pop()
    return "\n".join(_drop_name_block(lines)).rstrip()


def _is_contact_line(line: str) -> bool:
    stripped = line.strip()
    return len(stripped) <= 60 and bool(_CONTACT.search(stripped)) and not stripped.endswith(_SENTENCE_END)


def _drop_name_block(lines: list[str]) -> list[str]:
    """After the closing greeting, a few short lines that are names, titles or contact details are the signature.

    A line with digits or a colon that is no contact detail ("注文番号: 12345") is the customer's words: then the
    block stays.
    """
    for index in range(len(lines) - 1, -1, -1):
        if _CLOSING.search(lines[index].strip()):
            tail = [line.strip() for line in lines[index + 1 :] if line.strip()]
            if 0 < len(tail) <= NAME_BLOCK_MAX_LINES and all(map(_is_name_or_contact, tail)):
                return lines[: index + 1]
            break
    return lines


def _is_name_or_contact(line: str) -> bool:
    if _is_contact_line(line):
        return True
    return len(line) <= 30 and not _NOT_A_NAME.search(line) and not line.endswith(_SENTENCE_END)
