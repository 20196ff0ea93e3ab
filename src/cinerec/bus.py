"""The event bus: how events travel from whoever received them to whoever stores them.

Chosen by URL scheme, like the store and the cache:

- ``memory://`` (the default, ``cinerec serve``): in-process. Publishing hands the events to
  the registered handler at once (the service stores them), so an answer still means
  "committed to the database".
- ``amqp://user:pass@host:port/vhost`` (the topology): RabbitMQ. The collector publishes each
  request's events as one persistent message on a durable queue with publisher confirms;
  :meth:`Bus.publish` returns only once the broker has confirmed it, so an answer of 200
  means "the broker has it on disk". The worker consumes, stores, and acknowledges only after
  the store has committed: a worker killed in between gets the message redelivered, and the
  store keeps it once (every event carries a ``client_event_id`` derived from the message id).

The RabbitMQ client is ``pika``: its connections are not thread-safe, so each side owns one in
one thread (the publisher's thread serves every request thread through a queue).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from cinerec.domain import Event, EventKind

log = logging.getLogger(__name__)

#: how long a publisher waits for the broker's confirm before answering 503
PUBLISH_TIMEOUT_S = 5.0
#: a refused connection is not tried again sooner than this (a dead broker is not hammered)
RECONNECT_BACKOFF_S = 0.5

Handler = Callable[[list[Event]], Any]


class BusUnavailableError(RuntimeError):
    """The events could not be made durable on the bus now: nothing was acknowledged."""


def encode(message_id: str, events: Sequence[Event]) -> bytes:
    """One message: the events of one request. An event without a ``client_event_id`` gets
    ``<message id>:<index>``, so a redelivered message is stored once."""
    rows = []
    for n, e in enumerate(events):
        cid = e.client_event_id or f"{message_id}:{n}"
        rows.append([e.user_id, e.movie_id, str(e.kind), e.value, e.ts, cid])
    return json.dumps({"id": message_id, "events": rows}, separators=(",", ":")).encode()


def decode(body: bytes) -> list[Event]:
    data = json.loads(body)
    return [Event(u, m, EventKind(k), v, ts, c) for u, m, k, v, ts, c in data["events"]]


class Bus(ABC):
    url: str

    @abstractmethod
    def publish(self, events: Sequence[Event]) -> Any:
        """Make ``events`` durable on the bus; raises :class:`BusUnavailableError` when that
        cannot be done now. Returns what the in-process handler returned (None over a
        broker: the worker stores them later)."""

    @abstractmethod
    def consume(self, handler: Handler, stop: threading.Event) -> None:
        """Hand every message's events to ``handler`` until ``stop`` is set; a message is
        acknowledged only after ``handler`` returned (it raised: delivered again)."""

    @abstractmethod
    def ping(self) -> None: ...

    def close(self) -> None:
        return None


class LocalBus(Bus):
    """In-process: the single-process server. ``publish`` calls the handler directly."""

    url = "memory://"

    def __init__(self) -> None:
        self.handler: Handler | None = None

    def publish(self, events: Sequence[Event]) -> Any:
        if self.handler is None:
            raise BusUnavailableError("nothing consumes the in-process bus")
        return self.handler(list(events))

    def consume(self, handler: Handler, stop: threading.Event) -> None:
        self.handler = handler

    def ping(self) -> None:
        return None


class RabbitBus(Bus):
    """RabbitMQ through ``pika``: a durable queue, persistent messages, publisher confirms."""

    def __init__(self, url: str, queue_name: str, prefetch: int = 64) -> None:
        self.url = url
        self.queue_name = queue_name
        self.prefetch = prefetch
        self._jobs: queue.Queue[tuple[bytes, str, Future[None]] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    # -- connections -----------------------------------------------------------------------
    def _connect(self) -> Any:
        import pika

        params = pika.URLParameters(self.url)
        params.socket_timeout = 2
        params.blocked_connection_timeout = PUBLISH_TIMEOUT_S
        params.connection_attempts = 1
        params.heartbeat = 30
        conn = pika.BlockingConnection(params)
        channel = conn.channel()
        channel.queue_declare(self.queue_name, durable=True)
        return conn, channel

    # -- publishing (collector) ------------------------------------------------------------
    def publish(self, events: Sequence[Event]) -> None:
        if not events:
            return None
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._publisher, name="bus-publisher", daemon=True
                )
                self._thread.start()
        message_id = os.urandom(12).hex()
        fut: Future[None] = Future()
        self._jobs.put((encode(message_id, events), message_id, fut))
        try:
            fut.result(timeout=PUBLISH_TIMEOUT_S)
        except FutureTimeout as exc:
            raise BusUnavailableError("the event broker did not confirm in time") from exc
        return None

    def _publisher(self) -> None:
        """Owns the publishing connection; (re)connects on demand, so a broker that comes
        back is used again without a restart."""
        import pika

        conn: Any = None
        channel: Any = None
        refused_at = 0.0
        while True:
            job = self._jobs.get()
            if job is None:
                break
            body, message_id, fut = job
            if fut.done():  # its request gave up already
                continue
            try:
                if conn is None or not conn.is_open:
                    if time.monotonic() - refused_at < RECONNECT_BACKOFF_S:
                        raise BusUnavailableError("the event broker is unreachable")
                    try:
                        conn, channel = self._connect()
                        channel.confirm_delivery()
                    except Exception:
                        refused_at = time.monotonic()
                        conn = None
                        raise
                channel.basic_publish(
                    "",
                    self.queue_name,
                    body,
                    pika.BasicProperties(
                        delivery_mode=2,  # persistent: on the broker's disk before the confirm
                        content_type="application/json",
                        message_id=message_id,
                    ),
                    mandatory=True,
                )
                fut.set_result(None)
            except Exception as exc:
                log.warning("could not publish to the event broker: %s", exc)
                _close_quietly(conn)
                conn = None
                if not fut.done():
                    fut.set_exception(BusUnavailableError("the event broker is unreachable"))
        _close_quietly(conn)

    # -- consuming (worker) ----------------------------------------------------------------
    def consume(self, handler: Handler, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                conn, channel = self._connect()
            except Exception as exc:
                log.warning("event broker unreachable (%s); retrying", exc)
                stop.wait(RECONNECT_BACKOFF_S)
                continue
            try:
                channel.basic_qos(prefetch_count=self.prefetch)
                for method, _props, body in channel.consume(
                    self.queue_name, inactivity_timeout=0.2
                ):
                    if stop.is_set():
                        break
                    if method is None:
                        continue
                    self._handle(channel, method, body, handler, stop)
            except Exception as exc:
                log.warning("lost the event broker (%s); reconnecting", exc)
                stop.wait(RECONNECT_BACKOFF_S)
            finally:
                _close_quietly(conn)

    def _handle(
        self, channel: Any, method: Any, body: bytes, handler: Handler, stop: threading.Event
    ) -> None:
        try:
            events = decode(body)
        except (ValueError, KeyError, TypeError):
            # Not ours (or corrupt): it would fail on every delivery. Drop it, loudly.
            log.error("dropping an undecodable message (%d bytes)", len(body))
            channel.basic_ack(method.delivery_tag)
            return
        try:
            handler(events)
        except Exception:
            # The store refused or is down: the message goes back to the queue (nothing was
            # acknowledged), and this consumer pauses before the next try.
            log.exception("could not store a message's events; it will be delivered again")
            channel.basic_nack(method.delivery_tag, requeue=True)
            stop.wait(RECONNECT_BACKOFF_S)
            return
        channel.basic_ack(method.delivery_tag)

    def ping(self) -> None:
        conn, _ = self._connect()
        _close_quietly(conn)

    def close(self) -> None:
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join(timeout=5)


def _close_quietly(conn: Any) -> None:
    if conn is None:
        return
    try:
        if conn.is_open:
            conn.close()
    except Exception:  # closing a dead connection: nothing left to do
        log.debug("closing a broker connection failed", exc_info=True)


def open_bus(url: str, queue_name: str = "cinerec.events") -> Bus:
    if url.startswith("memory"):
        return LocalBus()
    if url.startswith(("amqp://", "amqps://")):
        return RabbitBus(url, queue_name)
    raise ValueError(f"unsupported broker URL {url!r}: use memory:// or amqp://user:pass@host/")
