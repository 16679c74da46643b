"""The web form's two languages: Japanese first, English on request (`?lang=en` or Accept-Language)."""

from __future__ import annotations

from flask import request

LANGUAGES = ("ja", "en")
DEFAULT_LANGUAGE = "ja"

TEXTS: dict[str, dict[str, str]] = {
    "ja": {
        "title": "お問い合わせ",
        "intro": "ご質問をお送りください。内容に応じて担当窓口へおつなぎします。",
        "subject": "件名",
        "email": "メールアドレス",
        "body": "お問い合わせ内容",
        "optional": "任意",
        "submit": "送信",
        "other_language": "English",
        "error_heading": "入力内容をご確認ください。",
        "error_body": "お問い合わせ内容を入力してください（{limit}文字以内）。",
        "error_subject": "件名は500文字以内で入力してください。",
        "error_customer_email": "メールアドレスの形式が正しくありません。",
        "error_other": "入力内容に使用できない文字が含まれています。",
        "ticket_title": "お問い合わせを受け付けました",
        "reference": "受付番号",
        "status": "状態",
        "route": "担当窓口",
        "confidence": "確信度",
        "your_message": "お問い合わせ内容",
        "new_ticket": "別のお問い合わせをする",
        "status_received": "受付済み",
        "status_queued": "振り分け待ち",
        "status_routed": "振り分け済み",
        "status_needs_review": "担当者が確認中",
        "status_failed": "振り分けできませんでした（担当者が対応します）",
        "route_Account": "アカウント窓口",
        "route_Payment": "お支払い窓口",
        "route_Other": "総合窓口",
        "error_page": "エラーが発生しました",
        "back": "トップへ戻る",
    },
    "en": {
        "title": "Ask us",
        "intro": "Send us your question; we will pass it to the right team.",
        "subject": "Subject",
        "email": "E-mail",
        "body": "Your question",
        "optional": "optional",
        "submit": "Ask",
        "other_language": "日本語",
        "error_heading": "Please check what you entered.",
        "error_body": "Please write your question (at most {limit} characters).",
        "error_subject": "The subject may have at most 500 characters.",
        "error_customer_email": "This is not a valid e-mail address.",
        "error_other": "Your message contains characters we cannot accept.",
        "ticket_title": "We have received your question",
        "reference": "Reference",
        "status": "Status",
        "route": "Team",
        "confidence": "Confidence",
        "your_message": "Your question",
        "new_ticket": "Ask another question",
        "status_received": "Received",
        "status_queued": "Waiting to be routed",
        "status_routed": "Routed",
        "status_needs_review": "A person is checking it",
        "status_failed": "Could not be routed automatically (a person will handle it)",
        "route_Account": "Account team",
        "route_Payment": "Payment team",
        "route_Other": "General support",
        "error_page": "Something went wrong",
        "back": "Back to the form",
    },
}


def pick_language(*, read_form: bool = True) -> str:
    """`lang` in the query string (or the form's hidden field), else the browser's preference, else Japanese.

    Error pages pass read_form=False: reading the form of a request refused as too large would raise again.
    """
    asked = request.args.get("lang", "")
    if not asked and read_form and request.method == "POST":
        asked = request.form.get("lang", "")
    if asked in LANGUAGES:
        return asked
    return request.accept_languages.best_match(LANGUAGES, default=DEFAULT_LANGUAGE) or DEFAULT_LANGUAGE


def texts(lang: str) -> dict[str, str]:
    return TEXTS.get(lang, TEXTS[DEFAULT_LANGUAGE])
