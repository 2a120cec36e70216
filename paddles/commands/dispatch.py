"""`paddles dispatch`: deliver events to webhook subscriptions and publish them to the
message brokers of PADDLES_EVENT_BROKERS (run beside the web server).

Fans new events out into deliveries, POSTs them signed with each subscription's secret
(X-Paddles-Signature: sha256=HMAC of the body), retries failures with exponential backoff
for PADDLES_WEBHOOK_RETRY_SECONDS (default 24 h), and disables a subscription that keeps
failing. All state is in the database: stop, kill or restart it at any time (a delivery in
flight when it died is sent again: at-least-once), and run several if one is not enough.
Wakes on PostgreSQL NOTIFY; polls every PADDLES_DISPATCH_POLL_INTERVAL seconds on SQLite.
Each broker (amqp://, mqtt://, nats:// URLs, comma-separated) gets every event in id order,
at least once, each confirmed by the broker before its cursor moves; a broker that is down
is retried with back-off (PADDLES_BROKER_BACKOFF_BASE/_MAX) and misses nothing. Several
dispatchers may run: each broker is published to by one of them at a time (a lease of
PADDLES_BROKER_LEASE seconds). Stops cleanly on SIGTERM/SIGINT.
"""
from __future__ import annotations

from ..dispatch import run_dispatcher
from ._common import positive_int


def register(sub):
    parser = sub.add_parser("dispatch", help="deliver events to webhooks and message brokers",
                            description=__doc__)
    parser.add_argument("--once", action="store_true",
                        help="deliver what is due now, then exit (instead of running on)")
    parser.add_argument("--concurrency", type=positive_int, metavar="N",
                        help="attempts in flight at once (default: settings "
                             "dispatch_concurrency, 4)")
    return parser


def run(args, settings) -> int:
    run_dispatcher(settings, once=args.once, concurrency=args.concurrency)
    return 0
