"""NATS with JetStream, with nats-py: each message counted once the stream has acknowledged
it, the event's uuid as `Nats-Msg-Id` so that JetStream drops a message sent twice within
its duplicate window (2 minutes by default).

Subject: the event's topic and type (`org.paddles.job.status`). The stream (`?stream=`,
default `paddles`) is created when missing, capturing `<event_topic_prefix>.>` with
JetStream's defaults (file storage, no limits); an existing stream is used as it is, and
must capture those subjects (a publish to a subject no stream captures fails, and says so).
Each publish names the stream, so a message another stream would capture is refused rather
than stored elsewhere.

nats-py is asyncio: the publisher runs its own event loop, in the dispatcher thread that
publishes to this broker.
"""
from __future__ import annotations

import asyncio
from collections.abc import Sequence

import nats
import nats.errors
import nats.js.errors

from .base import Broker, Message, PublishFailed, describe


class JetStreamPublisher:
    def __init__(self, broker: Broker, *, timeout: float, topic_prefix: str):
        self.broker = broker
        self.stream = broker.options["stream"]
        self.subjects = [f"{topic_prefix.strip('.')}.>"]
        self.timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._nc = None
        self._js = None
        self._ready = False  # connected, and the stream is known to exist

    def _run(self, coroutine):
        return self._loop.run_until_complete(asyncio.wait_for(coroutine, self.timeout * 2))

    async def _connect(self):
        host = f"[{self.broker.host}]" if ":" in self.broker.host else self.broker.host

        seen: list[BaseException] = []

        async def keep(exc):  # said with the exception the caller gets, not logged twice
            seen.append(exc)

        try:
            # one try (max_reconnect_attempts=0 would mean: try for ever); paddles dispatch
            # retries with its own back-off
            nc = await nats.connect(
                servers=[f"nats://{host}:{self.broker.port}"], user=self.broker.username,
                password=self.broker.password, connect_timeout=self.timeout,
                allow_reconnect=False, max_reconnect_attempts=1, reconnect_time_wait=0,
                error_cb=keep, name="paddles-dispatch")
        except nats.errors.NoServersError:
            raise ConnectionError(describe(seen[-1]) if seen else "no server answered") \
                from None
        return nc, nc.jetstream(timeout=self.timeout)

    def _open(self):
        if self._nc is not None and self._nc.is_connected and self._ready:
            return self._js
        self.close()
        self._nc, self._js = self._run(self._connect())
        try:
            self._run(self._js.stream_info(self.stream))
        except nats.js.errors.NotFoundError:
            self._run(self._js.add_stream(name=self.stream, subjects=self.subjects))
        self._ready = True
        return self._js

    def publish(self, messages: Sequence[Message]) -> None:
        done = 0
        try:
            js = self._open()
            for message in messages:
                self._run(js.publish(message.key, message.body, timeout=self.timeout,
                                     stream=self.stream,
                                     headers={"Nats-Msg-Id": message.uuid,
                                              "Content-Type": "application/json"}))
                done += 1
        except (nats.errors.NoRespondersError, nats.js.errors.NoStreamResponseError) as exc:
            self.close()
            raise PublishFailed(done, f"no JetStream stream captures the subject "
                                      f"(stream {self.stream} must capture "
                                      f"{self.subjects[0]}): {describe(exc)}") from exc
        except (TimeoutError, nats.errors.Error, OSError) as exc:
            self.close()
            raise PublishFailed(done, describe(exc)) from exc

    def probe(self) -> str:
        self._nc, self._js = self._run(self._connect())
        try:
            self._run(self._js.account_info())
        except nats.js.errors.Error as exc:
            raise ConnectionError(f"JetStream is not enabled: {describe(exc)}") from exc
        try:
            info = self._run(self._js.stream_info(self.stream))
            found = f"stream {self.stream} exists (subjects {', '.join(info.config.subjects)})"
        except nats.js.errors.NotFoundError:
            found = f"stream {self.stream} not there yet (paddles dispatch creates it)"
        return f"reachable, JetStream enabled; {found}"

    def close(self) -> None:
        nc, self._nc, self._js, self._ready = self._nc, None, None, False
        if nc is not None and not nc.is_closed:
            try:
                self._run(nc.close())
            except Exception:  # already broken: nothing left to close cleanly
                pass

    def __del__(self):
        if not self._loop.is_closed() and not self._loop.is_running():
            self._loop.close()
