"""How fast `paddles dispatch` drains a backlog of events to each message broker.

Writes N message events (100 per transaction) on a fresh database, then times one
dispatcher publishing them all to each of RabbitMQ, Mosquitto and NATS JetStream on this
machine (`run_forever(once=True)`: until the cursor is at the newest event), each message
confirmed by the broker (publisher confirm, PUBACK, JetStream ack) and the cursor moved
every 100. The exchange, topic prefix and stream are unique and removed afterwards.

    .venv/bin/python bench/brokers_publish.py --events 5000                  # SQLite
    PADDLES_BENCH_DATABASE_URL=postgresql+psycopg2://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/brokers_publish.py                             # PostgreSQL
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from events_write import database  # noqa: E402

from paddles import migrations, notify  # noqa: E402
from paddles.db import make_engine, make_session_factory  # noqa: E402
from paddles.dispatch import Dispatcher  # noqa: E402
from paddles.services import brokers as broker_service  # noqa: E402
from paddles.services.events import record_event  # noqa: E402
from paddles.settings import load_settings  # noqa: E402


def urls(tag: str) -> dict[str, str]:
    return {"amqp": f"amqp://guest:guest@127.0.0.1:5672/?exchange={tag}",
            "mqtt": f"mqtt://127.0.0.1:1883/{tag}",
            "nats": f"nats://127.0.0.1:4222?stream={tag}"}


def clean_up(protocol: str, tag: str) -> None:
    if protocol == "amqp":
        import pika
        conn = pika.BlockingConnection(pika.URLParameters("amqp://guest:guest@127.0.0.1/"))
        conn.channel().exchange_delete(tag)
        conn.close()
    elif protocol == "nats":
        import nats

        async def delete():
            nc = await nats.connect("nats://127.0.0.1:4222")
            await nc.jetstream().delete_stream(tag)
            await nc.close()
        asyncio.run(delete())


def one(url: str, protocol: str, events: int) -> float:
    tag = f"paddles-bench-{uuid.uuid4().hex[:8]}"
    settings = load_settings(environ={}, database_url=url, event_brokers=urls(tag)[protocol],
                             event_topic_prefix=f"b{tag[-8:]}.paddles")
    dispatcher = Dispatcher(settings)  # the cursor starts here, before the events
    engine = make_engine(url)
    sessions = make_session_factory(engine, topic_prefix=settings.event_topic_prefix)
    for start in range(0, events, 100):
        with sessions.begin() as session:
            for i in range(start, min(events, start + 100)):
                record_event(session, "message", {"message": i}, subject="events")
    started = time.perf_counter()
    dispatcher.start_brokers(once=True)
    elapsed = time.perf_counter() - started
    with sessions() as session:
        rows, latest = broker_service.list_brokers(session)
        row = next(r for r in rows if tag in r.name)
        assert row.last_event_id == latest and row.published == events, row
    dispatcher.close()
    engine.dispose()
    clean_up(protocol, tag)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--protocols", default="amqp,mqtt,nats")
    args = parser.parse_args()
    with database(os.environ.get("PADDLES_BENCH_DATABASE_URL")) as url:
        migrations.upgrade(url)
        backend = url.split(":", 1)[0].split("+")[0]
        for protocol in args.protocols.split(","):
            elapsed = one(url, protocol, args.events)
            print(f"{backend:10} {protocol:5} {args.events} events in {elapsed:6.2f} s: "
                  f"{args.events / elapsed:7.0f} events/s confirmed")
        notify.forget(url)  # the dispatchers' LISTEN thread, before the database goes


if __name__ == "__main__":
    main()
