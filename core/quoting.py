"""The one quote and signature stripper: keep only the words the customer wrote in this message.

Both readers of customer text use it: the e-mail intake stores `customer_words(body)`, and the model's clean-up
(core.text.RULES) applies `drop_quoted_reply` and `drop_signature` to every ticket, in training and in serving, so a
reply is cut the same way whether it arrived by e-mail or was pasted into the web form.

Quotes (`drop_quoted_reply`): everything from the first quote header on goes, and so do quoted lines left in the
reply (interleaved answers). Quote headers, as the clients write them:
  - "-----Original Message-----", "-----元のメッセージ-----", "----- オリジナル メッセージ -----";
  - "On <date> <name> wrote:" (also wrapped over two lines), Gmail's Japanese "2024年5月1日(水) 10:00 山田 <a@b.jp>:",
    any short line ending in "<address>:" or "<address> wrote:";
  - Thunderbird's "… さんは書きました:" / "… が書きました", "… のメッセージ:", "… のメール:" (the colon is required
    there: 「エラーのメッセージ」 is text);
  - Outlook's header block: a From/差出人/Date/送信日時 line followed by at least two more header lines (Sent, To,
    宛先, 件名…); a customer who copies just the From and Subject of a mail they got goes on writing below them;
  - forwards ("---------- Forwarded message ---------", "転送されたメッセージ", "Begin forwarded message:") are cut
    like quotes, except that a forward with nothing written above it *is* the request: its body is kept, without
    its header lines.
Quote marks: ">" and the full-width "＞" / "≫" at the start of a line.
For a mail body (`customer_words`, at intake), the library mail-parser-reply (maintained, several languages) then
does the generic work on what is left: English clients' variants, sign-offs ("Thanks,\\nJohn"). The per-ticket
clean-up leaves that pass out: it costs four times the rest of the clean-up, and a mail's stored body has had it.

Signatures (`drop_signature`), from the end of the text:
  - an RFC 3676 delimiter line ("-- " or "--"): everything after it;
  - "Sent from my …", "iPhoneから送信", "Get Outlook for …" lines;
  - blocks under rule lines (━━━, ―――, ＝＝＝, -----, ◆◆◆, "--"…): walking up from the end, each block of at most
    SIGNATURE_MAX_LINES lines that holds a contact detail (or is empty, or, below a block already cut, holds only
    names) is cut; a block of words stops the walk, so a newsletter quoted between two rules keeps its text;
  - trailing short lines carrying contact details (TEL, company, e-mail, URL) that end no sentence;
  - a short block of names/titles/contact lines after the closing greeting (「よろしくお願いいたします。」, 「以上」).

Where the two strippers this module replaced disagreed, the rule kept is the union (every header and signature
shape either knew), with these choices: the rule-line walk replaces both "only the last rule line" (which missed
two-rule signature boxes) and "the first rule line with contact details anywhere after it" (which cut quoted
newsletters at their first rule); a contact line that ends a sentence (。？！:) is kept.
"""

from __future__ import annotations

import re

from mailparser_reply import EmailMessage

LANGUAGES = ["ja", "en"]
SIGNATURE_MAX_LINES = 10
SIGNATURE_MAX_CHARS = 1_000  # a signature block is short; longer tails are not even looked at
CONTACT_LINE_MAX_CHARS = 60
LONG_LINE = 200
NAME_BLOCK_MAX_LINES = 6

_FULLWIDTH_QUOTE = re.compile(r"^([ \t\u3000]*)[＞≫]", re.MULTILINE)
_QUOTED_LINE = re.compile(r"^[ \t\u3000]*>.*(?:\n|$)", re.MULTILINE)
_FIELD = r"[ \t*]*(?:差出人|送信者|送信日時|日時|日付|宛先|件名|CC|Cc|From|Sent|To|Subject|Date)[ \t*]*[:：]"
_DATE = r"(?:\d{4}\s*[年/.-]\s*\d{1,2}\s*[月/.-]\s*\d{1,2}\s*日?|\d{1,2}\s*月\s*\d{1,2}\s*日)"
_QUOTE_HEADERS = re.compile(
    "|".join(
        (
            r"^[ \t]*-{2,}\s*(?:original message|元のメッセージ|オリジナル\s*メッセージ)\s*-{2,}[ \t]*$",
            r"^[ \t]*on [^\n]{3,200} wrote:[ \t]*$",
            r"^[^\n]{0,200}(?:さん|様)?(?:は|が)書きました\s*[:：]?[ \t]*$",
            r"^[^\n]{3,120}(?:のメッセージ|のメール)[ \t]*[:：][ \t]*$",
            r"^[^\n]{0,120}<[^<>\s]+@[^<>\s]+>[ \t]*(?:wrote)?[ \t]*[:：][ \t]*$",
            r"^[^\n]{0,40}" + _DATE + r"[^\n]{0,160}(?:\n[^\n]{0,120})?(?:>|wrote|書きました)\s*[:：][ \t]*$",
            r"^[ \t*]*(?:差出人|送信者|From|日付|送信日時|Date)[ \t*]*[:：][^\n]*\n"
            r"(?:" + _FIELD + r"[^\n]*(?:\n|$)){2,}",
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
_SIG_DELIMITER = re.compile(r"^--[ \t]?$", re.MULTILINE)
_RULE = re.compile(
    r"^[ \t\u3000]*(?:[-=_~*#━─═＝－―—・.]{3,}|[◆◇■□★☆※]{3,}|[-=]{2})[ \t\u3000]*$", re.MULTILINE
)
# Contact details, not words about them: "change my phone number" is a request, "TEL: 03-..." is a signature.
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
_BLANK_LINES = re.compile(r"\n{3,}")


def customer_words(text: str) -> str:
    """The message the customer wrote, without quoted messages, quote marks or signature; "" when nothing is left.

    For a mail body: after this module's own rules, mail-parser-reply reads the reply the way mail clients write
    it. That library pass costs about 0.1 ms a text, four times the model's whole clean-up, so it runs once per
    mail here, at intake (the stored body is already stripped), and not in the clean-up every ticket goes through
    in training and serving."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = drop_signature(_library_reply_body(drop_quoted_reply(text)))
    return _BLANK_LINES.sub("\n\n", text).strip()


# --- quotes -----------------------------------------------------------------------------------------------------

def drop_quoted_reply(text: str) -> str:
    """Cut at the first quote header (a forward: see the module docstring) and drop quoted lines."""
    text = _FULLWIDTH_QUOTE.sub(r"\1>", text)
    text = _cut_quotes(text)
    return _QUOTED_LINE.sub("", text) if ">" in text else text


def _cut_quotes(text: str) -> str:
    """Cut at the first quote header; at a forward header, unless nothing was written above it."""
    # Cheap guard (this runs on every ticket): every header form needs a `-`, a colon or 書きました.
    if "-" not in text and ":" not in text and "：" not in text and "書きました" not in text:
        return text
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


def _library_reply_body(text: str) -> str:
    """The latest reply's body as mail-parser-reply reads it (it also cuts the sign-offs and footers it knows)."""
    if not text.strip():
        return ""
    shielded, long_lines = _shield_long_lines(text)
    replies = EmailMessage(text=shielded, languages=list(LANGUAGES), keep_hyphen_lists=True).read().replies
    body = replies[0].body if replies else ""
    for placeholder, line in long_lines.items():
        body = body.replace(placeholder, line)
    return body


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


# --- signatures -------------------------------------------------------------------------------------------------

def drop_signature(text: str) -> str:
    """Cut the signature shapes listed in the module docstring, from the end of the text."""
    delimiter = _SIG_DELIMITER.search(text)
    if delimiter:
        text = text[: delimiter.start()]
    lines = text.rstrip().split("\n")
    while lines and _SENT_FROM.match(lines[-1]):
        lines.pop()
    text = _drop_ruled_blocks("\n".join(lines))
    lines = text.rstrip().split("\n")
    while len(lines) > 1 and _is_contact_line(lines[-1]):
        lines.pop()
    return "\n".join(_drop_name_block(lines)).rstrip()


def _drop_ruled_blocks(text: str) -> str:
    """Walk up the rule lines from the end, cutting each block below one that reads as a signature."""
    end = len(text)
    cut_one = False
    for rule in reversed(list(_RULE.finditer(text))):
        if len(text) - rule.end() > SIGNATURE_MAX_CHARS:
            break
        block = [line.strip() for line in text[rule.end() : end].split("\n") if line.strip()]
        if len(block) > SIGNATURE_MAX_LINES:
            break
        is_signature = (not block or bool(_CONTACT.search("\n".join(block)))
                        or (cut_one and all(map(_is_name_or_contact, block))))
        if not is_signature:
            break
        end, cut_one = rule.start(), True
    return text[:end]


def _is_contact_line(line: str) -> bool:
    stripped = line.strip()
    return (len(stripped) <= CONTACT_LINE_MAX_CHARS and bool(_CONTACT.search(stripped))
            and not stripped.endswith(_SENTENCE_END))


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
