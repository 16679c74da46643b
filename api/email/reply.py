"""The stored body of an e-mail holds the customer's words only.

The stripping itself is core.quoting's (quote headers, quote marks, forwards, signatures in Japanese and English
mail), shared with the model's clean-up so the two never disagree on what a quote is; core.text cleans again at
classification time, but the stored body must already be only the customer's words.
"""

from __future__ import annotations

from core.quoting import customer_words

__all__ = ["customer_words"]
