"""PADDLES_EVENT_BROKERS: URLs parsed (names with the password masked, defaults, clear
errors), keys and topics made from events, and `paddles check-config` reaching each real
broker (or saying it cannot)."""
from __future__ import annotations

import datetime as dt

import pytest

from paddles.brokers import BrokerUrlError, message_for, parse_broker, parse_brokers, redact
from paddles.commands import main
from paddles.models import Event
from tests.brokers.conftest import require_broker
from tests.deploy.conftest import free_port


def test_urls_parse_with_defaults_and_masked_names():
    amqp, mqtt, nats = parse_brokers(
        "amqp://paddles:s%40cret@mq.lab/ci?exchange=events&types=job.*&types=run.status, "
        "mqtt://bus.lab/lab/paddles?version=3.1.1,nats://nats.lab?stream=PADDLES")
    assert amqp.name == "amqp://paddles@mq.lab:5672/ci?exchange=events"
    assert (amqp.password, amqp.path, amqp.options["exchange"]) == ("s@cret", "ci", "events")
    assert amqp.types == ("job.*", "run.status")
    assert amqp.wants("job.status") and amqp.wants("run.status") and not amqp.wants("node.locked")
    assert mqtt.name == "mqtt://bus.lab:1883/lab/paddles?version=3.1.1"
    assert (mqtt.path, mqtt.options["version"], mqtt.types) == ("lab/paddles", "3.1.1", ())
    assert mqtt.wants("node.locked")
    assert nats.name == "nats://nats.lab:4222?stream=PADDLES" and nats.port == 4222
    assert parse_broker("amqp://h").options["exchange"] == "paddles"
    assert parse_broker("nats://h").options["stream"] == "paddles"
    assert parse_broker("mqtt://h").options["version"] == "5"
    assert redact("amqp://u:pw@h/,mqtt://h") == "amqp://u:***@h/,mqtt://h"
    assert parse_brokers("") == [] and parse_brokers(" , ") == []


@pytest.mark.parametrize("url, problem", [
    ("redis://h:6379", "the scheme must be one of"),
    ("amqp://:5672/", "names no host"),
    ("amqp://h:99999/", "Port out of range"),
    ("mqtt://h/x?qos=2", "unknown parameter 'qos'"),
    ("mqtt://h/a/+", "may not hold"),
    ("mqtt://h/?version=4", "version must be 5 or 3.1.1"),
    ("nats://h?stream=a.b", "stream must be a name"),
    ("nats://h/x", "a NATS URL has no path"),
    ("amqp://u:pw@h/?exchange=", "exchange is empty"),
])
def test_bad_urls_are_refused_clearly(url, problem):
    with pytest.raises(BrokerUrlError, match=problem) as err:
        parse_broker(url)
    assert "pw" not in str(err.value)


def test_a_broker_listed_twice_is_refused():
    with pytest.raises(BrokerUrlError, match="listed twice"):
        parse_brokers("amqp://a:1@h/,amqp://a:2@h/?types=job.*")


def test_keys_say_topic_and_type():
    def key(topic, type_):
        event = Event(id=1, uuid="u", time=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
                      topic=topic, type=type_, subject="s", data={})
        return message_for(event).key

    assert key("org.paddles.job", "job.status") == "org.paddles.job.status"
    assert key("org.paddles.run", "run.created") == "org.paddles.run.created"
    assert key("org.paddles.node", "node.locked") == "org.paddles.node.locked"
    assert key("org.paddles.message.osd.thrash", "message") == "org.paddles.message.osd.thrash"
    assert key("lab.events", "job.status") == "lab.events.job.status"


def _check_config(monkeypatch, capsys, database_url, tmp_path, brokers: str) -> tuple[int, str]:
    monkeypatch.setenv("PADDLES_DATABASE_URL", database_url)
    monkeypatch.setenv("PADDLES_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PADDLES_EVENT_BROKERS", brokers)
    monkeypatch.setenv("PADDLES_BROKER_TIMEOUT", "3")
    monkeypatch.delenv("PADDLES_CONFIG", raising=False)
    capsys.readouterr()
    code = main(["check-config"])
    return code, capsys.readouterr().out


def test_check_config_reaches_each_broker(monkeypatch, capsys, database_url, db_engine,
                                          tmp_path):
    for protocol in ("amqp", "mqtt", "nats"):
        require_broker(protocol)
    code, out = _check_config(
        monkeypatch, capsys, database_url, tmp_path,
        "amqp://guest:guest@127.0.0.1:5672/?exchange=paddles-check,"
        "mqtt://127.0.0.1:1883/paddles-check,nats://127.0.0.1:4222?stream=paddles_check")
    assert code == 0, out
    assert "ok   broker amqp://guest@127.0.0.1:5672/?exchange=paddles-check: reachable" in out
    assert "ok   broker mqtt://127.0.0.1:1883/paddles-check: reachable" in out
    assert "ok   broker nats://127.0.0.1:4222?stream=paddles_check: reachable, JetStream" in out
    assert "guest:guest" not in out  # the settings table masks the password too
    assert "event_brokers" in out and "amqp://guest:***@127.0.0.1" in out


def test_check_config_fails_on_an_unreachable_broker_or_a_bad_url(
        monkeypatch, capsys, database_url, db_engine, tmp_path):
    port = free_port()  # nothing listens there
    code, out = _check_config(monkeypatch, capsys, database_url, tmp_path,
                              f"amqp://127.0.0.1:{port}/,mqtt://127.0.0.1:{port}/x,"
                              f"nats://127.0.0.1:{port}")
    assert code == 1
    for scheme in ("amqp", "mqtt", "nats"):
        assert f"FAIL broker {scheme}://127.0.0.1:{port}" in out, out
    assert out.count("unreachable:") == 3 and "refused" in out.lower()
    code, out = _check_config(monkeypatch, capsys, database_url, tmp_path, "kafka://h:9092")
    assert code == 1 and "FAIL settings: event_brokers: broker URL 'kafka://h:9092'" in out
