"""HTML-only mail → plain text, with the mail clients' quoted and signature blocks removed first.

BeautifulSoup (html.parser, no C dependency) rather than a Markdown converter: the ticket stores the customer's
words as plain text, not Markdown escapes. Quotes are dropped by structure while the structure is still there
(Gmail's gmail_quote, Outlook's divRplyFwdMsg and what follows it, Thunderbird's moz-cite-prefix, blockquotes);
the text-level reply stripper then handles whatever a client marked up differently. <script>/<style> elements
are code, not words, and go; text that merely *mentions* <script> (escaped in the HTML) is kept verbatim.
"""

from __future__ import annotations

import re

from bs4 import BeautifulSoup, NavigableString, Tag

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
    for node in soup.find_all(string=True):
        if isinstance(node, NavigableString) and not node.find_parent(("pre", "textarea")):
            node.replace_with(_SPACE.sub(" ", str(node)))  # as a browser shows it: source line breaks are spaces
    for br in soup.find_all("br"):
        br.replace_with("\n")
    for tag in soup.find_all(_BLOCKS + _PARAGRAPHS):
        if isinstance(tag, Tag):
            marker = _PARAGRAPH if tag.name in _PARAGRAPHS else _BLOCK
            tag.insert_before(marker)
            tag.insert_after(marker)
    text = _BREAKS.sub(_line_breaks, soup.get_text().replace("\u00a0", " "))
    return text.strip()


def _line_breaks(run: re.Match[str]) -> str:
    """Between two pieces of text: one line break per block boundary, plus one per <br>; two (a blank line) at
    most, and at least two around a paragraph. Gmail writes each line as a <div> and a blank line as <div><br>."""
    text = run.group(0)
    breaks = text.count("\n") + (1 if _BLOCK in text or _PARAGRAPH in text else 0)
    if _PARAGRAPH in text:
        breaks = max(breaks, 2)
    return "\n" * min(breaks, 2)
