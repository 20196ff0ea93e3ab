"""The event bus against the real RabbitMQ (a queue of its own per test): persistent
messages with publisher confirms, redelivery until the handler succeeds, and every event
stored once however often its message is delivered."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cinerec.bus import BusUnavailableError, LocalBus, RabbitBus, decode, encode, open_bus
from cinerec.domain import Event, EventKind
from cinerec.store import open_store

AMQP_URL = os.environ.get("CINEREC_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
REQUIRE_SERVICES = os.environ.get("CINEREC_REQUIRE_SERVICES") == "1"


@pytest.fixture
def rabbit() -> Iterator[RabbitBus]:
    bus = RabbitBus(AMQP_URL, f"cinerec-test-{uuid.uuid4().hex[:10]}")
    try:
        bus.ping()
    except Exception as exc:
        if REQUIRE_SERVICES:
            pytest.fail(f"RabbitMQ required but unreachable at {AMQP_URL}: {exc}")
        pytest.skip(f"RabbitMQ unreachable at {AMQP_URL}: {exc}")
    yield bus
    bus.close()
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    conn.channel().queue_delete(bus.queue_name)
    conn.close()


def test_a_message_keeps_its_events_and_gives_each_a_stable_id() -> None:
    events = [
        Event("u1", "m1", EventKind.LIKE, ts=10.0),
        Event("u1", "m2", EventKind.DISLIKE, ts=11.0, client_event_id="mine"),
    ]
    back = decode(encode("abc", events))
    assert [(e.user_id, e.movie_id, e.kind, e.ts) for e in back] == [
        ("u1", "m1", EventKind.LIKE, 10.0),
        ("u1", "m2", EventKind.DISLIKE, 11.0),
    ]
    assert [e.client_event_id for e in back] == ["abc:0", "mine"]
    assert decode(encode("abc", events)) == back  # the same message, the same ids


def test_the_local_bus_hands_events_to_its_handler_at_once() -> None:
    bus = open_bus("memory://")
    assert isinstance(bus, LocalBus)
    with pytest.raises(BusUnavailableError):
        bus.publish([Event("u", "m", EventKind.LIKE)])
    got: list[Event] = []
    bus.consume(lambda evs: got.extend(evs) or len(evs), threading.Event())
    assert bus.publish([Event("u", "m", EventKind.LIKE)]) == 1
    assert [e.movie_id for e in got] == ["m"]


def test_a_message_redelivered_after_a_failure_is_stored_once(
    rabbit: RabbitBus, tmp_path: Path
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'bus.db'}")
    rabbit.publish([Event("u1", f"m{i}", EventKind.LIKE, ts=1.0 + i) for i in range(3)])
    rabbit.publish([Event("u2", "m9", EventKind.LIKE, ts=5.0)])
    stop = threading.Event()
    calls: list[int] = []

    def handler(events: list[Event]) -> None:
        # Stored, then the worker "dies" before the ack: the broker delivers it again.
        fresh = store.add_events(events)
        calls.append(sum(fresh))
        if len(calls) == 1:
            raise RuntimeError("crash between the commit and the ack")
        if len(calls) == 3:
            stop.set()

    t = threading.Thread(target=rabbit.consume, args=(handler, stop), daemon=True)
    t.start()
    t.join(timeout=30)
    assert stop.is_set(), f"not every message came through: {calls}"
    # The first message twice (its redelivery stored nothing new), the second once.
    assert sorted(calls) == [0, 1, 3]
    stored = sorted((e.user_id, e.movie_id) for _, e in store.iter_events())
    assert stored == [("u1", "m0"), ("u1", "m1"), ("u1", "m2"), ("u2", "m9")]
    store.close()


def test_publishing_to_a_broker_that_does_not_answer_raises_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    bus = RabbitBus(f"amqp://guest:guest@127.0.0.1:{port}/", "nowhere")
    with pytest.raises(BusUnavailableError):
        bus.publish([Event("u", "m", EventKind.LIKE)])
    bus.close()
