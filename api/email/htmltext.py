"""HTML-only mail → plain text, with the mail clients' quoted and signature blocks removed first.

BeautifulSoup (html.parser, no C dependency) rather than a Markdown converter: the ticket stores the customer's
words as plain text, not Markdown escapes. Quotes are dropped by structure while the structure is still there
(Gmail's gmail_quote, Outlook's divRplyFwdMsg and what follows it, Thunderbird's moz-cite-prefix, blockquotes);
the text-level reply stripper then handles whatever a client marked up differently. <script>/<style> elements
are code, not words, and go; text that merely *mentions* <script> (escaped in the HTML) is kept verbatim.
"""

from __future__ import annotations

import re

from bs4 import BeautifulSoup, CData, NavigableString, PageElement, Tag

_DROP = ("script", "style", "head", "title", "template", "noscript", "object", "iframe")
# Quoted earlier messages and signatures, as each client marks them up.
_QUOTES = (
    "blockquote, .gmail_quote, .gmail_quote_container, .gmail_signature, .gmail_signature_prefix, "
    ".moz-cite-prefix, .moz-signature, .yahoo_quoted, #yahoo_quoted, .protonmail_quote, .protonmail_signature_block, "
    "#Signature, .x_Signature, #appendonsend"
)
# Outlook puts its "From: / Sent:" block in this div and the quoted message after it, as siblings.
_OUTLOOK_HEADER = "#divRplyFwdMsg, #x_divRplyFwdMsg"
_BLOCKS = (
    "div", "li", "tr", "table", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "section", "article",
    "header", "footer", "address", "dl", "dt", "dd", "hr", "blockquote",
)  # fmt: skip
_PARAGRAPHS = ("p",)
_PRE = ("pre", "textarea")
_BLOCK, _PARAGRAPH = "\x1e", "\x1d"  # markers, resolved into line breaks once the text is out
_SPACE = re.compile(r"[ \t\r\n\f]+")
_BREAKS = re.compile(r"[ \x1d\x1e\n]*[\x1d\x1e\n][ \x1d\x1e\n]*")


def html_to_text(html: str) -> str:
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(_DROP):
        tag.decompose()
    for header in soup.select(_OUTLOOK_HEADER):
        for sibling in list(header.find_next_siblings()):
            sibling.decompose()
        header.decompose()
    for tag in soup.select(_QUOTES):
        if not tag.decomposed:
            tag.decompose()
    text = _BREAKS.sub(_line_breaks, _render(soup).replace("\u00a0", " "))
    return text.strip()


def _render(root: Tag) -> str:
    """The text with block markers, walked with an explicit stack: a mail nesting thousands of <div>s costs
    linear time and no recursion (inserting markers into the tree instead is quadratic on deep nesting)."""
    out: list[str] = []
    in_pre = 0
    stack: list[tuple[PageElement, bool]] = [(root, False)]
    while stack:
        node, closing = stack.pop()
        if isinstance(node, NavigableString):
            if type(node) in (NavigableString, CData):  # not comments, doctypes, processing instructions
                out.append(str(node) if in_pre else _SPACE.sub(" ", str(node)))  # source line breaks are spaces
            continue
        if not isinstance(node, Tag):
            continue
        name = node.name
        if closing:
            in_pre -= name in _PRE
            out.append(_PARAGRAPH if name in _PARAGRAPHS else _BLOCK)
            continue
        if name == "br":
            out.append("\n")
            continue
        if name in _BLOCKS or name in _PARAGRAPHS:
            out.append(_PARAGRAPH if name in _PARAGRAPHS else _BLOCK)
            in_pre += name in _PRE
            stack.append((node, True))
        stack.extend((child, False) for child in reversed(node.contents))
    return "".join(out)


def _line_breaks(run: re.Match[str]) -> str:
    """Between two pieces of text: one line break per block boundary, plus one per <br>; two (a blank line) at
    most, and at least two around a paragraph. Gmail writes each line as a <div> and a blank line as <div><br>."""
    text = run.group(0)
    breaks = text.count("\n") + (1 if _BLOCK in text or _PARAGRAPH in text else 0)
    if _PARAGRAPH in text:
        breaks = max(breaks, 2)
    return "\n" * min(breaks, 2)
