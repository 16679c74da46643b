"""Webhook commands: `furiwake webhook add | list | remove`, each one unit of work (docs/webhooks.md).

`add` prints the signing secret once (it is made when not given): the receiver needs it to verify deliveries.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from cli.database import existing_database
from cli.errors import CLIError
from core.config import Settings

Subparsers = Any  # argparse's _SubParsersAction is private


def cmd_add(args: argparse.Namespace, settings: Settings) -> int:
    from core.webhooks import EVENTS, add_subscription

    with existing_database(settings) as runtime, runtime.unit_of_work() as session:
        subscription = add_subscription(session, args.url, args.event or EVENTS, secret=args.secret,
                                        description=args.description)
        made = (subscription.id, subscription.url, subscription.events, subscription.secret)
    subscription_id, url, events, secret = made
    print(f"webhook {subscription_id}: {url} ({events.replace(',', ', ')})")
    if args.secret is None:
        print(f"signing secret (shown once): {secret}")
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    from core.webhooks import list_subscriptions

    with existing_database(settings) as runtime, runtime.sessions() as session:
        subscriptions = list_subscriptions(session)
    if args.json:
        print(json.dumps([{"id": s.id, "url": s.url, "events": s.events, "description": s.description,
                           "created_at": s.created_at.isoformat(), "pending": s.pending, "delivered": s.delivered,
                           "failed": s.failed} for s in subscriptions], ensure_ascii=False, indent=2))  # fmt: skip
        return 0
    if not subscriptions:
        print("no webhooks yet: `furiwake webhook add URL --event ticket.created`")
        return 0
    for s in subscriptions:
        counts = f"{s.delivered} delivered, {s.pending} pending, {s.failed} failed"
        print(f"{s.id:>4}  {s.url}  {','.join(s.events)}  ({counts})  {s.description or ''}".rstrip())
    return 0


def cmd_remove(args: argparse.Namespace, settings: Settings) -> int:
    from core.webhooks import remove_subscription

    with existing_database(settings) as runtime, runtime.unit_of_work() as session:
        removed = remove_subscription(session, args.id)
    if not removed:
        raise CLIError(f"no webhook {args.id} (`furiwake webhook list`)")
    print(f"removed webhook {args.id} and its deliveries")
    return 0


def register(sub: Subparsers) -> None:
    from core.webhooks import EVENTS

    p = sub.add_parser("webhook", help="outbound webhooks: add, list, remove subscriptions")
    webhook_sub = p.add_subparsers(dest="webhook_command", required=True)

    q = webhook_sub.add_parser("add", help="POST events to a URL, signed (prints the secret once)")
    q.add_argument("url", help="an http:// or https:// URL (https: payloads carry the customer's message)")
    q.add_argument("--event", action="append", choices=EVENTS, metavar="EVENT",
                   help=f"an event to send, repeatable (default: all): {', '.join(EVENTS)}")
    q.add_argument("--secret", help="the signing secret, at least 16 characters (default: a new random one)")
    q.add_argument("--description", help="a note for the admins, e.g. the helpdesk's name")
    q.set_defaults(func=cmd_add)

    q = webhook_sub.add_parser("list", help="list subscriptions with their deliveries' counts")
    q.add_argument("--json", action="store_true", help="print JSON for scripts")
    q.set_defaults(func=cmd_list)

    q = webhook_sub.add_parser("remove", help="remove a subscription (its pending deliveries are dropped)")
    q.add_argument("id", type=int)
    q.set_defaults(func=cmd_remove)
