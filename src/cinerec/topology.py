"""The background work of the topology's roles (``docs/deployment.md``).

- :class:`Follower` keeps an API replica's engine in step with the database: it reads the
  events the worker stored (by id), reloads the catalogue or everything when another process
  says so (versions in Redis), and picks up the models the worker promoted. The replica's
  engine serves the filtered lists and the fallback candidates; the default list comes from
  the plans in Redis.
- :class:`Worker` stores what the bus delivers (once each), makes the plans of the users who
  acted (leaving out their shown sets in Redis) and writes them to Redis, and trains on the
  schedule.

Both loops survive their dependencies' outages: a step that fails is logged and tried again,
so the process recovers by itself when the dependency returns.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable

from cinerec.domain import Event
from cinerec.engine.plans import evidence_grown
from cinerec.service import EventsResult, RecService
from cinerec.store import RefusedValueError

log = logging.getLogger(__name__)

#: how often a follower reads new events and versions
FOLLOW_INTERVAL_S = 0.2
#: event ids a follower reads again behind the newest (see :meth:`Follower.step`)
TAIL_WINDOW = 256
#: how often an API replica looks for newly promoted models
MODEL_CHECK_S = 5.0
#: movies in a user's plan in Redis: ten lists' worth (the API asks for more when it runs dry)
PLAN_DEPTH = 100
#: the shared plan of users with no history is remade this often (popularity moves on), and
#: sooner while the likes it was ordered by are few (``evidence_grown``, as ``serve``'s)
SHARED_PLAN_S = 60.0
#: plans remade per step of the ticker (the rest wait for the next steps)
REPLAN_PER_STEP = 50
#: a message with events of at most this many users has their plans made before its ack; a
#: larger one (an import) leaves them to the ticker, so the consumer keeps up its heartbeats
PLAN_ON_MESSAGE = 16


class _Versions:
    """Follows the versions other processes bump in Redis (:data:`cinerec.shared.TOPICS`)."""

    def __init__(self, svc: RecService) -> None:
        self.svc = svc
        self.seen = svc.shared.versions() if svc.shared else {}

    def changed(self) -> set[str]:
        """The topics that moved since the last call."""
        if self.svc.shared is None:
            return set()
        now = self.svc.shared.versions()
        out = {t for t, v in now.items() if self.seen.get(t) != v}
        self.seen = now
        return out


def reload(svc: RecService, changed: set[str]) -> None:
    """Reload from the database what another process changed (a wipe: everything)."""
    if "wipe" in changed:
        svc.load()
        return
    if "catalog" in changed:
        svc.engine.upsert_movies(list(svc.store.iter_movies()))
    if "users" in changed:
        for u in svc.store.iter_users():
            svc.engine.set_favorite_genres(u.id, u.favorite_genres)


class Follower:
    """An API replica's engine follows the database (see the module's docstring)."""

    def __init__(self, svc: RecService) -> None:
        self.svc = svc
        self.versions = _Versions(svc)
        self.models_checked = time.monotonic()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="follower", daemon=True)
        self._mark()

    def _mark(self) -> None:
        """Everything up to now is in the engine (just loaded)."""
        self.last_id = self.svc.store.last_event_id()
        self.applied = {i for i, _ in self.svc.store.iter_events(after_id=self._floor())}

    def _floor(self) -> int:
        return max(self.last_id - TAIL_WINDOW, 0)

    def start(self) -> None:
        self.thread.start()

    def step(self) -> None:
        svc = self.svc
        changed = self.versions.changed()
        reload(svc, changed)
        if "wipe" in changed:
            self._mark()
            return
        # Several workers commit out of id order: ids a little below the newest may still
        # arrive, so the last TAIL_WINDOW ids are read again and what was applied skipped.
        batch: list[Event] = []
        for event_id, e in svc.store.iter_events(after_id=self._floor()):
            if event_id in self.applied:
                continue
            self.applied.add(event_id)
            batch.append(e)
            self.last_id = max(self.last_id, event_id)
        if batch:
            svc.engine.apply_events(batch)
        floor = self._floor()
        self.applied = {i for i in self.applied if i > floor}
        if time.monotonic() - self.models_checked > MODEL_CHECK_S:
            self.models_checked = time.monotonic()
            svc.trainer.load_serving()

    def _run(self) -> None:
        while not self.stop.wait(FOLLOW_INTERVAL_S):
            try:
                self.step()
            except Exception as exc:  # an outage: the next step tries again
                log.warning("could not follow the database: %s", exc)


class Worker:
    """Stores the bus's events and keeps the plans in Redis (see the module's docstring)."""

    def __init__(self, svc: RecService) -> None:
        self.svc = svc
        self.versions = _Versions(svc)
        self.version = svc.engine.version
        self.shared_plan_at = 0.0
        #: the catalogue's positive signals when the shared plan was last published
        self.shared_plan_evidence = 0
        #: users whose plans the ticker makes (a model swap, a large message), in order
        self.todo: dict[str, None] = {}
        self._todo_lock = threading.Lock()
        self.stop = threading.Event()

    # -- the bus's handler (the consumer's thread) -----------------------------------------
    def handle(self, events: list[Event]) -> EventsResult:
        """Store a message's events (a redelivery is stored once: ids from the message id),
        then make the plans of the users who acted. Raising sends the message back."""
        svc = self.svc
        try:
            result = svc.record_events(events, plan=False)
        except RefusedValueError:
            # One value the database refuses must not block the queue: store the others.
            result = EventsResult(0, 0)
            for e in events:
                try:
                    one = svc.record_events([e], plan=False)
                except RefusedValueError as exc:
                    log.error("dropping an event the database refuses (%s): %r", exc, e)
                    continue
                result.accepted += one.accepted
                result.duplicates += one.duplicates
        users: dict[str, list[str]] = {}
        for e in events:
            users.setdefault(e.user_id, []).append(e.movie_id)
        if svc.shared is not None:
            for user, movies in users.items():
                svc.shared.mark_seen(user, movies)
            if len(users) <= PLAN_ON_MESSAGE:
                self.publish(users)
            else:
                self._later(users)
            svc.shared.count("events", result.accepted)
        return result

    def _later(self, users: Iterable[str]) -> None:
        with self._todo_lock:
            self.todo.update(dict.fromkeys(users))

    def publish(self, users: Iterable[str | None]) -> None:
        """Write these users' plans (None: the shared plan) to Redis: what the API serves.
        A plan leaves out the user's shown set (the replicas keep it in Redis)."""
        svc = self.svc
        shared = svc.shared
        assert shared is not None
        for user in users:
            if user is not None and not self._has_history(user):
                continue  # served from the shared plan until they act
            shown = list(shared.shown(user)) if user else []
            items = svc.engine.recommend(user or "", PLAN_DEPTH, exclude=shown, mark_shown=False)
            shared.put_plan(user, items)

    def _has_history(self, user: str) -> bool:
        state = self.svc.engine.user(user, create=False)
        return state is not None and bool(state.interactions or state.favorite_genres)

    # -- the ticker (its own thread) -------------------------------------------------------
    def step(self) -> None:
        svc = self.svc
        shared = svc.shared
        assert shared is not None
        changed = self.versions.changed()
        reload(svc, changed)
        if "wipe" in changed:
            svc.trainer.forget()
        if svc.engine.version != self.version:  # new models or catalogue: every plan is stale
            self.version = svc.engine.version
            self._later(u.id for u in list(svc.engine.users.values()) if u.interactions)
            self.shared_plan_at = 0.0
        evidence = svc.engine.catalog.n_positive
        grown = evidence_grown(self.shared_plan_evidence, evidence)
        if time.monotonic() - self.shared_plan_at > SHARED_PLAN_S or changed or grown:
            self.publish([None])
            self.shared_plan_at = time.monotonic()
            self.shared_plan_evidence = evidence
        # Dry plans first (a replica is serving that user now), then the backlog.
        dry = shared.take_replans()
        with self._todo_lock:
            for user in dry:
                self.todo.pop(user, None)
            batch = list(self.todo)[: max(REPLAN_PER_STEP - len(dry), 0)]
            for user in batch:
                del self.todo[user]
        self.publish(dict.fromkeys([*dry, *batch]))

    def run_ticker(self) -> None:
        while not self.stop.wait(FOLLOW_INTERVAL_S):
            try:
                self.step()
            except Exception as exc:  # an outage: the next step tries again
                log.warning("worker step failed: %s", exc)
