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
        "next_step": "今後の流れ",
        "next_pending": "担当窓口へ振り分けています。このページは自動で更新されます。",
        "next_reply_email": "担当窓口からご入力のメールアドレスへご返信します。",
        "next_reply_no_email": "担当窓口が対応します。メールアドレスのご入力がなかったため、"
        "お問い合わせの際は受付番号をお伝えください。",
        "next_resolved": "対応が完了しました。まだお困りの場合は、受付番号を添えて再度お問い合わせください。",
        "new_ticket": "別のお問い合わせをする",
        "status_received": "受付済み",
        "status_queued": "振り分け待ち",
        "status_routed": "振り分け済み",
        "status_needs_review": "担当者が確認中",
        "status_failed": "振り分けできませんでした（担当者が対応します）",
        "status_resolved": "対応完了",
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
        "next_step": "What happens next",
        "next_pending": "We are passing your question to the right team. This page updates by itself.",
        "next_reply_email": "The team will reply to the e-mail address you gave.",
        "next_reply_no_email": "The team will handle your question. You left no e-mail address, so please quote "
        "your reference when you contact us.",
        "next_resolved": "Your question has been answered. If you still need help, ask again quoting your reference.",
        "new_ticket": "Ask another question",
        "status_received": "Received",
        "status_queued": "Waiting to be routed",
        "status_routed": "Routed",
        "status_needs_review": "A person is checking it",
        "status_failed": "Could not be routed automatically (a person will handle it)",
        "status_resolved": "Resolved",
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


# --- the agents' pages ------------------------------------------------------------------------------------------
# English unless the agent picks Japanese (the switch in the top bar, kept in a cookie; api.agents.language says
# why not Accept-Language). A key missing in Japanese shows the English text.

AGENT_TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "nav_Queues": "Queues", "nav_Models": "Models", "nav_Agents": "Agents", "sign_out": "Sign out",
        "switch_language": "日本語",
        "queue_account": "Account", "queue_payment": "Payment", "queue_other": "Other",
        "queue_review": "Needs review", "queue_all": "All", "queue_mine": "Mine",
        "col_waiting": "Waiting", "col_ticket": "Ticket", "col_channel": "Channel", "col_route": "Route",
        "col_confidence": "Confidence", "col_owner": "Owner", "col_received": "Received", "col_status": "Status",
        "search_title": "Search", "search_label": "Search tickets", "search_button": "Search",
        "search_placeholder": "Reference, e-mail address or words", "search_older": "Older →",
        "search_nothing": "No ticket matches.", "customer_tickets": "This customer's other tickets",
        "status_received": "not queued yet", "status_queued": "waiting for the model", "status_routed": "routed",
        "status_needs_review": "needs review", "status_failed": "routing failed", "status_resolved": "resolved",
        "nothing_waiting": "Nothing waiting here.", "older": "← Older", "newer": "Newer →",
        "page_of": "{shown} of {total}, oldest first", "updated": "Updated {when} · refreshes by itself",
        "received": "Received {when}",
        # fine categories and suggested replies (queue rows, the ticket page); a category's own name is the
        # English text, so only Japanese lists them (category_<name>)
        "col_category": "Category", "category": "Category", "category_model": "model: {category}",
        "category_unknown": "—", "category_keep": "(no category)", "category_set": "Set category",
        "category_hint": "A category: pick it, then its route (or Set category to keep the route); kept the "
                         "same way.",
        "category_score": "The model's confidence in this category",
        "suggestions": "Suggested replies",
        "suggestions_intro": "Answers to the most similar tickets in {scope}. Use one as a start, edit it, then send.",
        "suggestions_scope_route": "the {route} route", "suggestions_scope_all": "every category",
        "suggestions_none": "No answered ticket like this one yet.",
        "suggestion_use": "Use this reply", "suggestion_similarity": "{pct} similar",
        "source_corpus": "answer library, {ref}", "source_agent_reply": "sent on {ref}",
    },
    "ja": {
        "nav_Queues": "キュー", "nav_Models": "モデル", "nav_Agents": "担当者", "nav_Webhooks": "Webhook",
        "sign_out": "サインアウト",
        "switch_language": "English",
        "queue_account": "アカウント", "queue_payment": "お支払い", "queue_other": "その他",
        "queue_review": "要確認", "queue_all": "すべて", "queue_mine": "自分の担当",
        "col_waiting": "待ち時間", "col_ticket": "チケット", "col_channel": "経路", "col_route": "振り分け先",
        "col_confidence": "確信度", "col_owner": "担当", "col_received": "受付", "col_status": "状態",
        "search_title": "検索", "search_label": "チケットを検索", "search_button": "検索",
        "search_placeholder": "受付番号・メールアドレス・キーワード", "search_older": "さらに古いもの →",
        "search_nothing": "該当するチケットはありません。", "customer_tickets": "このお客様の他のチケット",
        "status_received": "未登録", "status_queued": "振り分け待ち", "status_routed": "振り分け済み",
        "status_needs_review": "要確認", "status_failed": "振り分け失敗", "status_resolved": "解決済み",
        "nothing_waiting": "待っているチケットはありません。", "older": "← 古いもの", "newer": "新しいもの →",
        "page_of": "{total}件中{shown}件（古い順）", "updated": "{when} 更新 · 自動で更新されます",
        "received": "{when} 受付",
        "col_category": "カテゴリ", "category": "カテゴリ", "category_model": "モデル: {category}",
        "category_unknown": "—", "category_keep": "（カテゴリなし）", "category_set": "カテゴリを設定",
        "category_hint": "カテゴリは選んでから振り分け先を押してください"
                         "（振り分け先を変えない場合は「カテゴリを設定」）。同じく修正として保存されます。",
        "category_score": "このカテゴリに対するモデルの確信度",
        "suggestions": "返信の候補",
        "suggestions_intro": "{scope}の似たチケットへの回答です。使う候補を選び、編集してから送信してください。",
        "suggestions_scope_route": "振り分け先「{route}」", "suggestions_scope_all": "全カテゴリ",
        "suggestions_none": "似たチケットへの回答はまだありません。",
        "suggestion_use": "この返信を使う", "suggestion_similarity": "類似度 {pct}",
        "source_corpus": "回答集 {ref}", "source_agent_reply": "{ref} で送信",
        "category_Account - Login": "アカウント - ログイン", "category_Account - Password": "アカウント - パスワード",
        "category_Account - Registration": "アカウント - 登録", "category_Account - Profile": "アカウント - 登録情報",
        "category_Account - Deletion": "アカウント - 退会", "category_Account - Security": "アカウント - セキュリティ",
        "category_Payment - Method": "お支払い - 支払い方法", "category_Payment - Billing": "お支払い - 請求",
        "category_Payment - Refund": "お支払い - 返金", "category_Payment - Subscription": "お支払い - 定期購入",
        "category_Shipping": "配送", "category_Product": "商品", "category_Bug": "不具合",
        "category_Feature Request": "機能の要望", "category_Usage": "使い方", "category_Campaign": "キャンペーン",
        "category_Feedback": "ご意見", "category_Spam": "迷惑メール",
    },
}
