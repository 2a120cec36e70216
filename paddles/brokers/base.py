"""What every protocol shares: broker URLs parsed, messages made, failures said (the
package docstring, paddles/brokers/__init__.py, describes the URLs)."""
from __future__ import annotations

import dataclasses
import datetime as dt
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

import orjson

from .. import serializers

DEFAULT_PORTS = {"amqp": 5672, "amqps": 5671, "mqtt": 1883, "mqtts": 8883, "nats": 4222}
PROTOCOLS = {"amqp": "amqp", "amqps": "amqp", "mqtt": "mqtt", "mqtts": "mqtt",
             "nats": "nats"}
DEFAULT_EXCHANGE = "paddles"
DEFAULT_STREAM = "paddles"
# the query parameters each protocol reads (AMQP passes the others on to pika, which knows
# its own: heartbeat, connection_attempts, ssl_options...)
OPTIONS = {"amqp": {"exchange": DEFAULT_EXCHANGE}, "mqtt": {"version": "5"},
           "nats": {"stream": DEFAULT_STREAM}}
MQTT_VERSIONS = ("5", "3.1.1")


class BrokerUrlError(ValueError):
    """A broker URL paddles cannot use; the text says why (never the password)."""


@dataclasses.dataclass(frozen=True)
class Broker:
    url: str  # as configured, password included
    name: str  # the URL with the password masked: the cursor's key, metrics label, logs
    protocol: str  # amqp, mqtt or nats
    scheme: str
    host: str
    port: int
    username: str | None
    password: str | None
    path: str  # AMQP: the vhost; MQTT: the topic prefix; NATS: unused
    options: dict  # exchange / version / stream
    extra: tuple[tuple[str, str], ...]  # AMQP: the query parameters pika reads
    types: tuple[str, ...]  # event type globs; () is every event

    def wants(self, event_type: str) -> bool:
        from fnmatch import fnmatchcase
        return not self.types or any(fnmatchcase(event_type, glob) for glob in self.types)


def parse_broker(url: str) -> Broker:
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BrokerUrlError(f"broker URL {_masked(url)!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in PROTOCOLS:
        raise BrokerUrlError(f"broker URL {_masked(url)!r}: the scheme must be one of "
                             f"{', '.join(PROTOCOLS)}")
    if not parts.hostname:
        raise BrokerUrlError(f"broker URL {_masked(url)!r} names no host")
    protocol = PROTOCOLS[scheme]
    options = dict(OPTIONS[protocol])
    types: list[str] = []
    extra: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "types":
            types += [glob for glob in value.replace(" ", "+").split("+") if glob]
        elif key in options:
            options[key] = value
        elif protocol == "amqp":
            extra.append((key, value))
        else:
            raise BrokerUrlError(f"broker URL {_masked(url)!r}: unknown parameter {key!r} "
                                 f"(known: {', '.join(sorted([*options, 'types']))})")
    path = unquote(parts.path.lstrip("/"))
    if protocol == "amqp" and not options["exchange"]:
        raise BrokerUrlError(f"broker URL {_masked(url)!r}: exchange is empty")
    if protocol == "mqtt":
        if options["version"] not in MQTT_VERSIONS:
            raise BrokerUrlError(f"broker URL {_masked(url)!r}: version must be "
                                 f"{' or '.join(MQTT_VERSIONS)}")
        if any(c in path for c in "+#\0"):
            raise BrokerUrlError(f"broker URL {_masked(url)!r}: an MQTT topic prefix may "
                                 "not hold + or #")
        path = path.strip("/")
    if protocol == "nats":
        stream = options["stream"]
        if not stream or any(c in stream for c in " .*>/\\\t"):
            raise BrokerUrlError(f"broker URL {_masked(url)!r}: stream must be a name "
                                 "without spaces, dots, *, > or slashes")
        if path:
            raise BrokerUrlError(f"broker URL {_masked(url)!r}: a NATS URL has no path "
                                 "(name the stream with ?stream=)")
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "types"]
    name = f"{scheme}://" + (f"{quote(unquote(parts.username), safe='')}@"
                             if parts.username else "")
    name += f"{_host(parts.hostname)}:{port or DEFAULT_PORTS[scheme]}{parts.path or ''}"
    name += f"?{urlencode(kept)}" if kept else ""
    return Broker(url=url, name=name, protocol=protocol, scheme=scheme, host=parts.hostname,
                  port=port or DEFAULT_PORTS[scheme],
                  username=unquote(parts.username) if parts.username else None,
                  password=unquote(parts.password) if parts.password is not None else None,
                  path=path, options=options, extra=tuple(extra), types=tuple(types))


def parse_brokers(text: str) -> list[Broker]:
    """The comma-separated `event_brokers` setting; BrokerUrlError names the first problem."""
    brokers = [parse_broker(url) for url in (text or "").split(",") if url.strip()]
    seen: set[str] = set()
    for broker in brokers:
        if broker.name in seen:
            raise BrokerUrlError(f"broker {broker.name} is listed twice")
        seen.add(broker.name)
    return brokers


def redact(text: str) -> str:
    """The `event_brokers` setting with every password masked (for check-config, logs)."""
    return ",".join(_masked(url.strip()) for url in (text or "").split(",") if url.strip())


def _masked(url: str) -> str:
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rsplit("@", 1)
        user = netloc[0].split(":", 1)[0]
        return parts._replace(netloc=f"{user}:***@{netloc[1]}").geturl()
    except ValueError:
        return "<unparsable URL>"


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


# ---- messages -----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Message:
    event_id: int
    uuid: str
    type: str
    key: str  # dotted: org.paddles.job.status
    time: dt.datetime
    body: bytes  # the event as GET /events/ shows it, JSON


def routing_key(topic: str, event_type: str) -> str:
    """The event's topic followed by its type, the type's first word (which the topic ends
    with: org.paddles.job + job.status) said once: `org.paddles.job.status`; a message
    event's key is its topic (`org.paddles.message.osd.thrash`)."""
    kind, _, rest = event_type.partition(".")
    if not rest:
        return topic
    if topic.rsplit(".", 1)[-1] == kind:
        return f"{topic}.{rest}"
    return f"{topic}.{event_type}"


def message_for(event) -> Message:
    return Message(event_id=event.id, uuid=event.uuid, type=event.type,
                   key=routing_key(event.topic, event.type), time=event.time,
                   body=orjson.dumps(serializers.event_detail(event)))


class PublishFailed(Exception):
    """A batch stopped: the first `done` messages were confirmed, the next one was not."""

    def __init__(self, done: int, reason: str):
        super().__init__(reason)
        self.done = done
        self.reason = reason


def describe(exc: BaseException) -> str:
    """One line about a client library's exception (they are often blank or nested)."""
    text = " ".join(str(exc).split()) or " ".join(" ".join(map(repr, exc.args)).split())
    return f"{type(exc).__name__}: {text}"[:500] if text else type(exc).__name__
