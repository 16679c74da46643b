"""A ticket's conversation: the reference tag that threads mail by subject, and the entries after the first message.

The tag is the ticket's reference in square brackets, e.g. `[T-7KQ2M9XA]`: every mail we send carries it in the
subject, and a reply whose subject still carries it (through `Re:`, `RE:`, `Fw:`, `返信:`, `転送:` ...) is threaded
onto that ticket even when the customer's client dropped In-Reply-To and References.
"""

from __future__ import annotations

import re

# core.orm.new_reference: "T-" and eight characters of a look-alike-free alphabet.
_TAG = re.compile(r"\[(T-[2-9A-HJKMNP-Z]{8})\]")


def reference_tag(reference: str) -> str:
    """The subject tag for a ticket's reference: `[T-7KQ2M9XA]`."""
    return f"[{reference}]"


def tagged_reference(subject: str | None) -> str | None:
    """The reference a subject's tag names (the last tag, if several were quoted in), or None."""
    if not subject:
        return None
    found = _TAG.findall(subject.upper())
    return found[-1] if found else None
