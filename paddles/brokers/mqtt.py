"""MQTT 5 or 3.1.1 (Mosquitto and others) with paho-mqtt 2: QoS 1, each message counted once
its PUBACK has arrived.

Topic: the URL's path as a prefix, then the event's topic and type with `/` separators
(`mqtt://host:1883/lab` -> `lab/org/paddles/job/status`); consumers subscribe to
`lab/org/paddles/#`. MQTT 3.1.1 has no message properties; with MQTT 5 (the default,
`?version=3.1.1` for older brokers) each message carries content type application/json and
the user properties `uuid` and `type`, and the body always holds the uuid.

A batch is sent with up to MAX_INFLIGHT messages awaiting their PUBACK; the broker forwards
a connection's QoS 1 messages in the order they came, and the batch counts as confirmed up
to the first message whose PUBACK did not arrive.
"""
from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from .base import Broker, Message, PublishFailed, describe

MAX_INFLIGHT = 100


class MqttPublisher:
    def __init__(self, broker: Broker, *, timeout: float):
        self.broker = broker
        self.timeout = timeout
        self.v5 = broker.options["version"] == "5"
        self._client: mqtt.Client | None = None
        self._lost = threading.Event()
        self._why = ""

    def topic(self, message: Message) -> str:
        return "/".join(filter(None, (self.broker.path, message.key.replace(".", "/"))))

    def _connect(self) -> mqtt.Client:
        if self._client is not None and not self._lost.is_set():
            return self._client
        self.close()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                             client_id=f"paddles-{uuid.uuid4().hex[:12]}",
                             protocol=mqtt.MQTTv5 if self.v5 else mqtt.MQTTv311,
                             reconnect_on_failure=False)
        if self.broker.username is not None:
            client.username_pw_set(self.broker.username, self.broker.password)
        if self.broker.scheme == "mqtts":
            client.tls_set()
        client.max_inflight_messages_set(MAX_INFLIGHT)
        client.max_queued_messages_set(0)
        connected = threading.Event()
        lost = self._lost = threading.Event()
        answer: dict = {}

        def on_connect(_client, _userdata, _flags, reason_code, _properties):
            answer["rc"] = reason_code
            connected.set()

        def on_disconnect(_client, _userdata, _flags, reason_code, _properties):
            self._why = f"disconnected ({reason_code})"
            lost.set()
            connected.set()

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        client.connect(self.broker.host, self.broker.port,
                       keepalive=max(5, int(self.timeout * 3)))
        self._client = client
        client.loop_start()
        if not connected.wait(self.timeout):
            raise TimeoutError(f"no CONNACK within {self.timeout:g} s")
        rc = answer.get("rc")
        if rc is None or rc.is_failure:
            raise ConnectionError(f"connection refused: {rc}" if rc is not None
                                  else self._why or "disconnected")
        return client

    def publish(self, messages: Sequence[Message]) -> None:
        done = 0
        try:
            client = self._connect()
            sent = []
            for message in messages:
                props = None
                if self.v5:
                    props = Properties(PacketTypes.PUBLISH)
                    props.ContentType = "application/json"
                    props.UserProperty = [("uuid", message.uuid), ("type", message.type)]
                sent.append(client.publish(self.topic(message), message.body, qos=1,
                                           properties=props))
            for info in sent:
                deadline = time.monotonic() + self.timeout
                while not info.is_published():
                    if self._lost.is_set():
                        raise ConnectionError(self._why or "disconnected")
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"no PUBACK within {self.timeout:g} s")
                    info.wait_for_publish(min(0.05, self.timeout))
                done += 1
        except (OSError, RuntimeError, ValueError, TimeoutError) as exc:
            self.close()
            raise PublishFailed(done, describe(exc)) from exc

    def probe(self) -> str:
        self._connect()
        return f"reachable, connected with MQTT {'5' if self.v5 else '3.1.1'}"

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.disconnect()
            finally:
                client.loop_stop()
