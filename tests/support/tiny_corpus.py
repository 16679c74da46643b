"""A tiny corpus in the seed format (id, question, answer, category), for the tests of fine categories and
suggested replies: small enough to read, with near neighbours across categories and both languages."""

from __future__ import annotations

from pathlib import Path

ROWS = [
    ("A1", "パスワードを忘れました。再設定メールが届きません",
     "迷惑メールフォルダに再設定メールが届いていないかご確認ください。", "Account - Password"),
    ("A2", "パスワードを変更したいです",
     "設定画面の「パスワード変更」から変更できます。", "Account - Password"),
    ("A3", "ログインできません。エラーが出ます",
     "エラーコードを添えてもう一度お問い合わせください。", "Account - Login"),
    ("P1", "二重に請求されたので返金してください",
     "二重のご請求分を返金いたしました。", "Payment - Refund"),
    ("P2", "今月の請求額が間違っています\\n明細を見てください",
     "ご請求内容を確認のうえご連絡します。", "Payment - Billing"),
    ("E1", "I forgot my password and the reset email never arrived",
     "Please check your spam folder for the reset email.", "Account - Password"),
    ("E2", 'Please refund my order, I was "charged" twice',
     "I have refunded the duplicate charge.", "Payment - Refund"),
    ("S1", "格安SEOのご案内です", "", "Spam"),  # no answer: never suggested, still a category
]

PASSWORD_JA, PASSWORD_EN = ROWS[0][2], ROWS[5][2]
REFUND_JA, BILLING_JA = ROWS[3][2], ROWS[4][2]


def write_corpus(folder: Path) -> Path:
    path = folder / "tiny_corpus.tsv"
    lines = ["id\tquestion\tanswer\tcategory"] + ["\t".join(row) for row in ROWS]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
