"""A rule-routed ticket's history in the page's language: core.agents.history writes English lines of a fixed shape
(the rule's line, and the model's own prediction beside it); api.agents.language swaps the words, keeps the data."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from flask import Flask

from api.agents.language import history_text
from core.agents import HistoryEntry

AT = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
RULE = HistoryEntry(AT, "rule", "Rule: Routed by rule «VIP 請求» v3; the model said Payment 82 %")
ASSIGN_ONLY = HistoryEntry(AT, "rule", "Rule: Matched rule «VIP» v1; the model said Other 51 %; its assignee is no "
                                       "longer active, so the ticket is assigned automatically")
MODEL_BESIDE = HistoryEntry(AT, "routed", "Model 20261203-1: Payment (82%)")


@pytest.mark.parametrize(("language", "entry", "expected"), [
    ("en", RULE, "Routed by rule «VIP 請求» v3; the model said Payment 82 %"),
    ("ja", RULE, "ルール「VIP 請求」v3 で振り分け（モデルの判定: お支払い 82 %）"),
    ("en", MODEL_BESIDE, "Model 20261203-1: Payment (82%)"),
    ("ja", MODEL_BESIDE, "モデル 20261203-1: お支払い（82%）"),
    ("en", ASSIGN_ONLY, ASSIGN_ONLY.text.removeprefix("Rule: ")),
])  # fmt: skip
def test_rule_lines_read_in_the_pages_language(app: Flask, language: str, entry: HistoryEntry,
                                               expected: str) -> None:
    with app.test_request_context("/agent/tickets/x", headers={"Accept-Language": language}):
        assert history_text(entry) == expected


def test_an_assign_only_rule_line_is_translated_whole(app: Flask) -> None:
    with app.test_request_context("/agent/tickets/x", headers={"Accept-Language": "ja"}):
        text = history_text(ASSIGN_ONLY)
    assert "VIP" in text and "v1" in text and "51 %" in text
    assert "Matched" not in text and "assignee" not in text  # no English words left
