"""The service layer: every use case of the product, free of HTTP.

The API routes, the CLI, the simulator and the worker call :class:`RecService`.
Writes go to the store first (durable), then to the engine (visible to the next request).

One class serves every role (``docs/deployment.md``): ``serve`` (everything in one process,
events stored in process), ``api`` (serves lists; with Redis the replicas share the serving
state, :mod:`cinerec.shared`), ``collector`` (publishes events to the bus, :mod:`cinerec.bus`)
and ``worker`` (stores what the bus delivers, makes plans, trains).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from tqdm import tqdm

from cinerec.bus import BusUnavailableError, LocalBus, open_bus
from cinerec.cache import Cache, open_cache
from cinerec.config import Settings
from cinerec.domain import (
    Event,
    EventKind,
    Experiment,
    Feedback,
    Movie,
    RecLogEntry,
    User,
    Variant,
)
from cinerec.engine import Engine, Recommended
from cinerec.engine.explain import Reason
from cinerec.experiments import (
    Assignment,
    ExperimentConflictError,
    ExperimentError,
    Experiments,
)
from cinerec.shared import SharedState
from cinerec.store import Store, open_store
from cinerec.threads import name_os_thread
from cinerec.training import Trainer

log = logging.getLogger(__name__)

MAX_FAVORITE_GENRES = 3
#: a write for at most this many users makes their plans before it answers
REFRESH_ON_WRITE = 16
#: how often lists served without the engine lock are folded into its state
FOLD_INTERVAL_S = 0.02
DEMO_PATH = Path(__file__).resolve().parent / "demo_data" / "ml-latest-small"


class NotFoundError(LookupError):
    """A named thing (session, movie) does not exist."""


class InvalidInputError(ValueError):
    """Input that passed schema validation but breaks a rule of the domain."""


class UnavailableError(RuntimeError):
    """A write that cannot be made durable now (the database is down or refuses it): retry
    later. Nothing was acknowledged."""


#: how long an answer waits for its list to be logged before giving up (503)
LOG_TIMEOUT_S = 10.0


#: ids of sessions and requests: a random prefix per process and a counter (unique, and a
#: few hundred nanoseconds where reading the OS's randomness for each costs tens of µs)
_ID_PREFIX = os.urandom(8).hex()
_id_counter = itertools.count()


def new_id() -> str:
    """A 32-hex-digit id unique across processes and restarts (session and request ids)."""
    return f"{_ID_PREFIX}{next(_id_counter):016x}"


def wait_logged(result: RecResult) -> None:
    """Block until ``result``'s list is durable in the recommendation log (worker threads;
    a result made for an event loop is awaited with :func:`logged`)."""
    done = result.logged
    if done is None:
        return
    assert isinstance(done, Future), "a list served on the event loop is awaited there"
    try:
        done.result(timeout=LOG_TIMEOUT_S)
    except Exception as exc:
        raise UnavailableError("the list could not be stored; retry shortly") from exc


async def logged(result: RecResult) -> None:
    """Wait on the event loop until ``result``'s list is durable in the recommendation log."""
    done = result.logged
    if done is None:
        return
    fut = done if isinstance(done, asyncio.Future) else asyncio.wrap_future(done)
    # A plain timer that fails the future rather than ``asyncio.timeout`` (a scope, a task
    # lookup and a reschedule per answer: 3 % of the fast path's time); the writer skips a
    # future that has failed this way (``_settle``).
    timer = fut.get_loop().call_later(LOG_TIMEOUT_S, _expire, fut)
    try:
        await fut
    except Exception as exc:
        raise UnavailableError("the list could not be stored; retry shortly") from exc
    finally:
        timer.cancel()


def _expire(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError(f"not logged within {LOG_TIMEOUT_S} s"))


class ForbiddenError(PermissionError):
    """The caller may not act on this (another user's session)."""


class ConflictError(RuntimeError):
    """The request conflicts with the current state (an experiment already runs)."""


@dataclass(slots=True)
class RecResult:
    user_id: str
    session_id: str
    items: list[Recommended]
    #: the source that produced most of the list (contract B's ``source``)
    source: str
    model_version: str | None = None
    #: the experiment and variant the list was served in (None: none runs, or the caller
    #: forced a source)
    experiment: str | None = None
    variant: str | None = None
    #: resolves once the list is in the recommendation log (what the user was shown survives
    #: a crash from then on); None for a preview. HTTP answers wait for it.
    logged: Logged | None = None


@dataclass(slots=True)
class EventsResult:
    accepted: int
    duplicates: int
    unknown_movies: list[str] = field(default_factory=list)


#: a list's "it is in the log": a thread waits on a Future, an event loop on its own future
#: (resolved with one wake-up of the loop per commit, not one per list)
Logged = Future[None] | asyncio.Future[None]


def _settle(futs: list[asyncio.Future[None]], exc: BaseException | None) -> None:
    for f in futs:
        if not f.done():
            if exc is None:
                f.set_result(None)
            else:
                f.set_exception(exc)


class RecLogWriter:
    """Writes the recommendation log in the background with group commit.

    Lists are queued as they are served; one thread writes all that waits in a single
    transaction, then resolves each list's future. An HTTP answer waits for its list's future,
    so a list a client received is durable (a restart replays the log as the users' shown
    sets: no re-show after a crash), while many concurrent lists share one commit.
    ``flush()`` waits until everything queued is stored.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        #: batches of lists: one per event-loop pass (``put`` with a loop), or a single list
        self.q: queue.Queue[list[tuple[RecLogEntry, Logged]] | None] = queue.Queue()
        #: lists served on an event loop's current pass, handed over at its end
        self._on_loop: dict[asyncio.AbstractEventLoop, list[tuple[RecLogEntry, Logged]]] = {}
        self._on_loop_lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name="rec-log-writer", daemon=True)
        self.thread.start()

    def put(self, entry: RecLogEntry, loop: asyncio.AbstractEventLoop | None = None) -> Logged:
        """Queue a list; the returned future resolves once it is stored (a future of
        ``loop`` when one is given: call this from that loop then).

        On a loop, the lists served in one pass of it go to the writer together, handed
        over by a callback that runs after that pass's other ready callbacks: at a few
        thousand lists a second a pass serves several, and one hand-over wakes the writer
        once for all of them, where a wake-up per list had the writer commit one list at
        a time (each commit's fixed cost, ~70 µs of CPU, mostly under the GIL)."""
        if loop is None:
            done: Logged = Future()
            self.q.put([(entry, done)])
            return done
        fut = loop.create_future()
        with self._on_loop_lock:
            waiting = self._on_loop.get(loop)
            if waiting is None:
                waiting = self._on_loop[loop] = []
                loop.call_soon(self._hand_over, loop)
            waiting.append((entry, fut))
        return fut

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._on_loop_lock:
            batch = self._on_loop.pop(loop, None)
        if batch:
            self.q.put(batch)

    @property
    def backlog(self) -> int:
        """Lists waiting to be written."""
        with self._on_loop_lock:
            n = sum(len(b) for b in self._on_loop.values())
        with self.q.mutex:
            return n + sum(len(b) for b in self.q.queue if b)

    def _run(self) -> None:
        name_os_thread()
        while True:
            first = self.q.get()
            if first is None:
                self.q.task_done()
                return
            batch = list(first)
            taken = 1
            # Everything waiting shares this commit; what arrives during it, the next. No
            # wait for more: the lists of one event-loop pass come as one hand-over already,
            # and every answer waits for its commit, so a wait here is time the whole loop
            # may stand idle with all its connections waiting (a 2 ms wait did: README,
            # "Serving speed").
            while len(batch) < 500:
                try:
                    nxt = self.q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self.q.put(None)  # stop after this batch
                    self.q.task_done()
                    break
                batch += nxt
                taken += 1
            try:
                self._write(batch)
            finally:
                for _ in range(taken):
                    self.q.task_done()

    def _write(self, batch: list[tuple[RecLogEntry, Logged]]) -> None:
        try:
            self.store.log_recommendations([e for e, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                log.exception("could not write the log of session %s", batch[0][0].session_id)
                self._resolve(batch, exc)
                return
            # One entry the database refuses (PostgreSQL: a user id longer than its column, a
            # NUL character) must not lose the other entries of the batch.
            for one in batch:
                self._write([one])
            return
        self._resolve(batch, None)

    @staticmethod
    def _resolve(batch: list[tuple[RecLogEntry, Logged]], exc: BaseException | None) -> None:
        loops: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for _, fut in batch:
            if isinstance(fut, Future):
                if exc is None:
                    fut.set_result(None)
                else:
                    fut.set_exception(exc)
            else:
                loops.setdefault(fut.get_loop(), []).append(fut)
        for loop, futs in loops.items():
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(_settle, futs, exc)

    def flush(self) -> None:
        """Wait until every list queued so far is stored, those of a loop's current pass
        included."""
        with self._on_loop_lock:
            waiting = list(self._on_loop.values())
            self._on_loop.clear()
        for batch in waiting:
            self.q.put(batch)
        self.q.join()

    def close(self) -> None:
        self.q.put(None)
        self.thread.join(timeout=10)


class PlanRefresher:
    """Makes fresh plans in the background for users whose plan went stale (the serving
    models changed, or it grew old), coalescing repeated asks for the same user; between
    them, folds the lists the event loop served into the engine's state."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._pending: dict[str | None, None] = {}
        self._cv = threading.Condition()
        self._stop = False
        self.thread = threading.Thread(target=self._run, name="plan-refresher", daemon=True)
        self.thread.start()

    @property
    def backlog(self) -> int:
        """Users waiting for a fresh plan."""
        return len(self._pending)

    def put(self, user_id: str | None) -> None:
        with self._cv:
            self._pending[user_id] = None
            self._cv.notify()

    def _run(self) -> None:
        name_os_thread()
        while True:
            with self._cv:
                if not self._pending and not self._stop:
                    self._cv.wait(FOLD_INTERVAL_S)
                if self._stop:
                    return
                idle = not self._pending
                if not idle:
                    uid = next(iter(self._pending))
                    del self._pending[uid]
            if idle:
                self.engine.fold_served()
                continue
            t0 = time.perf_counter()
            try:
                self.engine.refresh([uid])
            except Exception:  # a failed refresh leaves the stale plan serving
                log.exception("could not refresh the plan of %r", uid)
            # Half the time at most: the engine lock stays free for the lists served
            # meanwhile (what waits here is served from a stale plan, not held up).
            time.sleep(time.perf_counter() - t0)

    def close(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify()
        self.thread.join(timeout=10)


class RecService:
    def __init__(
        self,
        settings: Settings,
        store: Store | None = None,
        cache: Cache | None = None,
        role: str = "serve",
    ) -> None:
        self.settings = settings
        self.role = role
        self.store = store or open_store(settings.database_url)
        self.cache = cache or open_cache(settings.cache_url)
        # ``serve`` is every role in one process: its events never leave it.
        self.bus = open_bus(
            "memory://" if role == "serve" else settings.broker_url, settings.broker_queue
        )
        if isinstance(self.bus, LocalBus):
            self.bus.consume(self.record_events, threading.Event())
        #: the serving state API replicas share (Redis), for the roles of the topology
        self.shared: SharedState | None = None
        if role in ("api", "worker") and settings.cache_url.startswith(("redis", "unix")):
            self.shared = SharedState(settings.cache_url)
        self.engine = Engine(
            settings.weights,
            exploration_share=settings.exploration_share,
            exploration_saturation=settings.exploration_saturation,
            half_life_days=settings.popularity_half_life_days,
            prior_count=settings.top_rated_prior_count,
            evidence_share=settings.ranker_evidence_share,
        )
        self.rec_log = RecLogWriter(self.store)
        self.refresher = PlanRefresher(self.engine)
        self.engine.on_stale = self.refresher.put
        self.trainer = Trainer(settings, self.store, self.engine)
        self.experiments = Experiments(self.store, attribution_s=settings.online_attribution_s)
        self._wipe_lock = threading.Lock()
        self.started_at = time.time()
        #: called after every list with (result, seconds, forced source): the metrics hook
        self.rec_listeners: list[Callable[[RecResult, float, str | None], None]] = []
        self._closers: list[Callable[[], None]] = [self.experiments.stop_reports]
        #: False until :meth:`load` has rebuilt the state (``/readyz`` answers 503 until then)
        self.loaded = False

    # -- lifecycle -----------------------------------------------------------------------
    def load(self, progress: bool = False) -> None:
        """Rebuild the engine's state from the store (at start-up)."""
        eng = self.engine
        eng.reset()
        eng.upsert_movies(self.store.iter_movies())
        for u in self.store.iter_users():
            eng.set_favorite_genres(u.id, u.favorite_genres)
        total = self.store.count_events()
        with tqdm(total=total, desc="loading events", unit="ev", disable=not progress) as bar:
            batch: list[Event] = []
            for _, e in self.store.iter_events():
                batch.append(e)
                if len(batch) >= 20_000:
                    eng.apply_events(batch)
                    bar.update(len(batch))
                    batch = []
            eng.apply_events(batch)
            bar.update(len(batch))
        self.purge_rec_log()
        for entry in self.store.iter_rec_log():
            eng.mark_shown(entry.user_id, entry.movie_ids, entry.sources, at=entry.ts)
        self.trainer.load_serving()
        self.trainer.last_trained_events = eng.n_events
        # Plans for everyone who has a history, in the background: the first list after a
        # restart is served from one (the newcomers' plans are made at once, per setting;
        # an API replica of the topology serves the plans the worker keeps in Redis).
        self.experiments.load()
        self._assignment_changed()
        for state in list(eng.users.values()) if self.shared is None else ():
            if state.interactions or state.favorite_genres:
                self.refresher.put(state.id)
        self.loaded = True

    def housekeeping(self) -> None:
        """What the scheduler runs every hour: the rec log's retention (the logged lists and
        the users known only from them), and forgetting the revocations of refresh tokens
        that have expired anyway."""
        self.purge_rec_log()
        self.forget_viewers()
        self.store.purge_revoked_tokens(time.time())

    def forget_viewers(self, now: float | None = None) -> int:
        """Forget, in memory, the users who never acted and were last shown a list longer
        than ``rec_log_retention_days`` ago (none when 0): what anonymous traffic leaves
        behind is bounded by the retention between restarts too, as the log's purge bounds
        it across them. Returns how many went."""
        days = self.settings.rec_log_retention_days
        if days <= 0:
            return 0
        gone = self.engine.forget_viewers((now or time.time()) - days * 86_400)
        if gone:
            log.info(
                "retention: forgot %d users known only from lists older than %g days", gone, days
            )
        return gone

    def purge_rec_log(self, now: float | None = None) -> int:
        """Delete the logged lists older than ``rec_log_retention_days`` (none when 0);
        returns how many went. A restart rebuilds the shown sets from what is left, so a
        user is never shown a movie again within the retention window; the users known only
        from purged lists are forgotten at the next start."""
        days = self.settings.rec_log_retention_days
        if days <= 0:
            return 0
        purged = self.store.purge_rec_log((now or time.time()) - days * 86_400)
        if purged:
            log.info("rec log retention: deleted %d lists older than %g days", purged, days)
        return purged

    def load_demo_if_empty(self, path: Path | None = None) -> bool:
        if self.store.count_movies() > 0:
            return False
        from cinerec.ingest import import_movielens

        import_movielens(self.store, path or self.settings.demo_path or DEMO_PATH, progress=True)
        return True

    def on_close(self, stop: Callable[[], None]) -> None:
        """Have :meth:`close` call ``stop`` first: background work that reads the store (the
        experiment reports, the online-quality monitor of the metrics) must end before the
        store closes."""
        self._closers.append(stop)

    def close(self) -> None:
        for stop in self._closers:
            stop()
        self.refresher.close()
        self.rec_log.close()
        self.bus.close()
        self.store.close()

    def cleanup(self) -> None:
        """Forget everything: catalogue, users, events, logs, caches, models."""
        with self._wipe_lock, self.engine.lock:
            self.rec_log.flush()
            self.store.wipe()
            self.engine.reset()
            self.trainer.forget()
            self.cache.clear()
            self.experiments.load()
            self._assignment_changed()

        self._tell("wipe")

    def _tell(self, what: str) -> None:
        """Tell the other processes of the topology that ``what`` changed (the catalogue, the
        users, or everything was wiped): they reload it from the database. Best effort: they
        also reload on restart."""
        if self.shared is None:
            return
        try:
            self.shared.bump(what)
        except Exception:
            log.warning("could not tell the other processes about the %s", what, exc_info=True)

    def _assignment_changed(self) -> None:
        """Tell the engine how users are assigned ranking settings now (an experiment
        started, stopped or was promoted): plans are made for the new settings."""
        ex = self.experiments
        self.engine.set_assignment(ex.setting_for, ex.settings_in_use())

    def _checks(self) -> dict[str, dict[str, Any]]:
        """Ping each dependency (database, cache, and the broker when events travel over
        one): status and latency, or what failed."""
        checks: dict[str, dict[str, Any]] = {}
        probes = [("database", self.store.ping), ("cache", self.cache.ping)]
        if not isinstance(self.bus, LocalBus):
            probes.append(("broker", self.bus.ping))
        for name, probe in probes:
            t0 = time.perf_counter()
            try:
                probe()
                checks[name] = {
                    "status": "ok",
                    "latency_ms": round((time.perf_counter() - t0) * 1e3, 2),
                }
            except Exception:  # checks report failures, they do not raise them
                # The exception text (hosts, driver messages) goes to the log, not to clients.
                log.warning("health check of the %s failed", name, exc_info=True)
                checks[name] = {"status": "error", "error": f"the {name} does not answer"}
        return checks

    def health(self) -> dict[str, Any]:
        checks = self._checks()
        ok = all(c["status"] == "ok" for c in checks.values())
        return {
            "status": "ok" if ok else "degraded",
            "checks": checks,
            "plans_pending": self.refresher.backlog,
            **self.engine.stats(),
        }

    def readiness(self) -> list[str]:
        """What keeps this instance from serving: empty when ready (``/readyz``)."""
        problems = [] if self.loaded else ["state is loading"]
        return problems + [c["error"] for c in self._checks().values() if c["status"] != "ok"]

    # -- catalogue & users ---------------------------------------------------------------
    def _check_catalog_genres(self, movies: Sequence[Movie]) -> None:
        """The catalogue keeps a movies x genres matrix: bound its width."""
        known = self.engine.catalog.genres
        limit = self.settings.max_catalog_genres
        new = {g for m in movies for g in m.genres if g not in known}
        if len(known) + len(new) > limit:
            raise InvalidInputError(
                f"the catalogue may hold at most {limit} distinct genres (CINEREC_MAX_CATALOG_"
                f"GENRES); it has {len(known)} and this request adds {len(new)} new ones"
            )

    def add_movies(self, movies: Sequence[Movie]) -> int:
        self._check_catalog_genres(movies)
        n = self.store.upsert_movies(movies)
        self.engine.upsert_movies(movies)
        self.engine.refresh([None])  # newcomers' shared plan sees the new movies at once
        self.cache.clear()
        self._tell("catalog")
        return n

    def add_items(self, item_ids: Sequence[str], genres: Sequence[Sequence[str]]) -> int:
        """Contract A's catalogue: bare ids with genres (the id doubles as the title); the
        order of arrival is kept as creation order."""
        now = time.time()
        return self.add_movies(
            [
                Movie(mid, title=mid, genres=list(g), created_at=now + i * 1e-6)
                for i, (mid, g) in enumerate(zip(item_ids, genres, strict=True))
            ]
        )

    def get_movie(self, movie_id: str) -> Movie | None:
        return self.store.get_movie(movie_id)

    def search_movies(self, query: str, limit: int = 20) -> list[Movie]:
        """Visible movies by title, best match first (the store's full-text index)."""
        return self.store.search_movies(query, limit)

    def set_movie_hidden(self, movie_id: str, hidden: bool) -> None:
        if not self.store.set_movie_hidden(movie_id, hidden):
            raise NotFoundError(f"movie {movie_id!r} does not exist")
        self.engine.set_hidden(movie_id, hidden)
        self.cache.clear()
        self._tell("catalog")

    def add_users(self, users: Sequence[User]) -> int:
        for u in users:
            self._check_genres(u.favorite_genres)
        n = self.store.upsert_users(users)
        for u in users:
            self.engine.set_favorite_genres(u.id, u.favorite_genres)
        self._tell("users")
        return n

    def get_user(self, user_id: str) -> User | None:
        return self.store.get_user(user_id)

    def set_favorite_genres(self, user_id: str, genres: Sequence[str]) -> list[str]:
        clean = list(dict.fromkeys(g.strip() for g in genres if g.strip()))
        self._check_genres(clean)
        existing = self.store.get_user(user_id)
        created = existing.created_at if existing else time.time()
        self.store.upsert_users([User(user_id, clean, created)])
        self.engine.set_favorite_genres(user_id, clean)
        self._tell("users")
        return clean

    @staticmethod
    def _check_genres(genres: Sequence[str]) -> None:
        if len(genres) > MAX_FAVORITE_GENRES:
            raise InvalidInputError(
                f"at most {MAX_FAVORITE_GENRES} favourite genres, got {len(genres)}"
            )

    # -- events --------------------------------------------------------------------------
    def submit_events(self, events: Sequence[Event]) -> EventsResult:
        """Make events durable through the bus: in process, stored at once (the result says
        what was new); over a broker, on the broker's disk when this returns (the worker
        stores them, once each; ``accepted`` counts what was queued)."""
        try:
            out = self.bus.publish(events)
        except BusUnavailableError as exc:
            raise UnavailableError(f"{exc}; nothing was stored, retry shortly") from exc
        if isinstance(out, EventsResult):
            return out
        return EventsResult(len(events), 0, [])

    def record_events(self, events: Sequence[Event], plan: bool = True) -> EventsResult:
        """Store events durably, then make them visible to recommendations.

        Events for movies not (yet) in the catalogue are kept; the engine ignores them for
        recommendations until the movie is added. ``plan=False``: the caller makes the users'
        plans itself (the worker writes them to Redis).
        """
        fresh = self.store.add_events(events)
        new = [e for e, f in zip(events, fresh, strict=True) if f]
        self.engine.apply_events(new)
        catalog = self.engine.catalog
        unknown = sorted(m for m in {e.movie_id for e in new} if not catalog.is_active(m))
        # Work on write: the users who acted get their next list's plan now, so that list
        # is served at once and reflects what they did. A large batch (an import) queues
        # for the background refresher only its users who have been reading (they hold a
        # plan); the others are planned on their first request. Planning thousands of
        # users per batch cost more than storing their events and starved the writes.
        users = list(dict.fromkeys(e.user_id for e in new))
        if plan and len(users) <= REFRESH_ON_WRITE:
            self.engine.refresh(users)
        elif plan:
            for user in self.engine.planned(users):
                self.refresher.put(user)
        return EventsResult(len(new), len(events) - len(new), unknown)

    def history(self, user_id: str, limit: int, offset: int = 0) -> tuple[list[Event], bool]:
        """A user's stored events, newest first, one page; and whether more follow."""
        page = self.store.user_events(user_id, limit=limit + 1, offset=offset, newest_first=True)
        return page[:limit], len(page) > limit

    def dismissed(self, user_id: str, limit: int = 10_000) -> set[str]:
        """Movies the user marked "not interested" or disliked (their latest ``limit``
        events): lists that are not recommendations (similar movies, search) leave them out
        too."""
        latest: dict[str, EventKind] = {}
        for e in self.store.user_events(user_id, limit=limit, newest_first=True):
            latest.setdefault(e.movie_id, e.kind)  # what the user said last counts
        gone = (EventKind.NOT_INTERESTED, EventKind.DISLIKE)
        return {movie for movie, kind in latest.items() if kind in gone}

    # -- recommendations -----------------------------------------------------------------
    def recommend(
        self,
        user_id: str,
        k: int | None = None,
        *,
        source: str | None = None,
        exclude: Sequence[str] = (),
        genres: Sequence[str] = (),
        explore: bool = True,
        session_id: str | None = None,
        record: bool = True,
    ) -> RecResult:
        """``record=False`` is a preview: nothing is logged or marked shown.

        Unless the caller forces a ``source``, the list follows the user's variant of the
        running experiment (or the promoted default) and is logged with it."""
        k = k or self.settings.recommendation_size
        t0 = time.perf_counter()
        assigned = None if source else self.experiments.assign(user_id)
        if self.shared is not None and record:
            items = self._claim_shared(user_id, k, source, exclude, genres, explore)
            return self._result(user_id, items, source, session_id, record, t0, assigned=assigned)
        items = self.engine.recommend(
            user_id,
            k,
            source=source,
            exclude=exclude,
            genres=genres,
            explore=explore,
            mark_shown=record,
            setting=assigned.setting if assigned else self.experiments.default,
        )
        return self._result(user_id, items, source, session_id, record, t0, assigned)

    def try_recommend(
        self,
        user_id: str,
        explore: bool = True,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> RecResult | None:
        """The default list, if it can be served at once from a plan without waiting for
        the engine (the event loop's fast path); None otherwise: then call
        :meth:`recommend` from a worker thread. Called on ``loop``, the result's ``logged``
        is a future of that loop (await it with :func:`logged`)."""
        if self.shared is not None:
            return None  # the shared state is a network call away: a worker thread's job
        t0 = time.perf_counter()
        assigned = self.experiments.assign(user_id)
        setting = assigned.setting if assigned else self.experiments.default
        items = self.engine.try_serve(user_id, self.settings.recommendation_size, explore, setting)
        if items is None:
            return None
        return self._result(user_id, items, None, None, True, t0, assigned, loop)

    def _claim_shared(
        self,
        user_id: str,
        k: int,
        source: str | None,
        exclude: Sequence[str],
        genres: Sequence[str],
        explore: bool,
    ) -> list[Recommended]:
        """A list served by an API replica of the topology: claimed in Redis, so no replica
        shows this user a movie any replica showed before (see :mod:`cinerec.shared`).

        The default list walks the plans the worker made (no scoring here). A filtered list,
        a forced source, or a user whose plans ran dry takes candidates from this replica's
        engine, which follows the database. Redis down: 503 (the shown state cannot be kept)."""
        assert self.shared is not None
        default = source is None and not exclude and not genres and explore
        try:
            got = self.shared.claim(user_id, k, plans=default)
            if got.restore:
                self._restore_shown(user_id)
                got = self.shared.claim(user_id, k, plans=default)
            if got.dry and default:
                self.shared.ask_replan(user_id)
            items = got.items
            if len(items) < k:
                # This replica's engine does not know what other replicas showed: leave out
                # everything in the shared shown set.
                shown = self.shared.shown(user_id)
                extra = self.engine.recommend(
                    user_id,
                    k - len(items),
                    source=source,
                    exclude=[*exclude, *shown],
                    genres=genres,
                    explore=explore,
                    mark_shown=False,
                )
                items += self.shared.claim(
                    user_id, k - len(items), plans=False, extra=extra, count=False
                ).items
                if len(items) < k:
                    # The user has seen every movie this list may hold: old ones come back
                    # (labelled reshow), as in one process, rather than a short list.
                    again = shown - {i.movie_id for i in items}
                    items += self.engine.reshows(user_id, again, k - len(items), exclude, genres)
        except redis.RedisError as exc:
            log.warning("the shared serving state does not answer: %s", exc)
            raise UnavailableError(
                "the shared serving state (Redis) does not answer: no list can be served "
                "without re-showing; retry shortly"
            ) from exc
        return items

    def _release_unlogged(
        self, user_id: str, items: list[Recommended]
    ) -> Callable[[Future[None]], None]:
        """A list that could not be logged is answered 503: its movies go back to the user
        (they were claimed in the shared shown set, but nobody received them)."""

        def release(fut: Future[None]) -> None:
            if fut.exception() is None or self.shared is None:
                return
            try:
                self.shared.release(user_id, [i.movie_id for i in items])
            except redis.RedisError:
                log.warning("could not give back the movies of an unlogged list of %r", user_id)

        return release

    def _restore_shown(self, user_id: str) -> None:
        """Refill a user's shown set in Redis from the database: every logged list and every
        movie the user acted on. (Lists still waiting for their commit are not in it yet: the
        limit docs/deployment.md names; a brand-new user, the common case, has none.)"""
        assert self.shared is not None
        try:
            movies = {m for e in self.store.user_rec_log(user_id) for m in e.movie_ids}
            movies.update(e.movie_id for e in self.store.user_events(user_id))
        except Exception as exc:
            raise UnavailableError(
                "the database does not answer: this user's shown movies cannot be checked; "
                "retry shortly"
            ) from exc
        self.shared.restore(user_id, movies)

    def _result(
        self,
        user_id: str,
        items: list[Recommended],
        source: str | None,
        session_id: str | None,
        record: bool,
        t0: float,
        assigned: Assignment | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> RecResult:
        session_id = session_id or new_id()
        main = _main_source(items, source)
        exp = assigned.experiment if assigned else None
        variant = assigned.variant if assigned else None
        logged = None
        if record:
            logged = self.rec_log.put(
                RecLogEntry(
                    session_id,
                    user_id,
                    [i.movie_id for i in items],
                    [i.source for i in items],
                    main,
                    experiment=exp,
                    variant=variant,
                ),
                loop,
            )
        # (an API replica's lists come from worker threads: a thread's future)
        if isinstance(logged, Future) and self.shared is not None:
            logged.add_done_callback(self._release_unlogged(user_id, items))
        result = RecResult(
            user_id, session_id, items, main, experiment=exp, variant=variant, logged=logged
        )
        for listener in self.rec_listeners:
            listener(result, time.perf_counter() - t0, source)
        return result

    def explain(self, result: RecResult) -> list[Reason]:
        """A reason a person can read for each movie of a list ("because you liked Heat"),
        made for the listed movies only; contract A never asks for it."""
        return self.engine.explain(result.user_id, result.items)

    def genre_top(self, user_id: str | None, limit: int) -> list[str]:
        favs: list[str] = []
        if user_id:
            u = self.engine.user(user_id, create=False)
            favs = list(u.favorite_genres) if u else []
        key = f"genre_top:{','.join(sorted(favs))}:{limit}"
        cached = self.cache.get(key)
        if cached is not None:
            return list(cached)
        out = self.engine.genre_top(None, limit, favs)
        self.cache.set(key, out, ttl=60.0)
        return out

    def similar(self, movie_id: str, k: int) -> list[Recommended]:
        out = self.engine.similar(movie_id, k)
        if out is None:
            raise NotFoundError(f"movie {movie_id!r} does not exist")
        return out

    def not_interested(self, user_id: str, movie_id: str) -> EventsResult:
        return self.submit_events([Event(user_id, movie_id, EventKind.NOT_INTERESTED)])

    def feedback(
        self, session_id: str, movie_id: str, liked: bool, user_id: str | None = None
    ) -> Feedback:
        """Feedback on a logged recommendation list; also recorded as a like/dislike."""
        self.rec_log.flush()
        entry = self.store.get_rec_log(session_id)
        if entry is None:
            raise NotFoundError(f"no recommendation session {session_id!r}")
        if user_id is not None and user_id != entry.user_id:
            raise ForbiddenError("this session belongs to another user")
        if movie_id not in entry.movie_ids:
            raise InvalidInputError(
                f"movie {movie_id!r} was not in the list of session {session_id!r}: feedback "
                "is on a shown movie (send other opinions as events)"
            )
        fb = Feedback(session_id, entry.user_id, movie_id, liked)
        self.store.add_feedback(fb)
        kind = EventKind.LIKE if liked else EventKind.DISLIKE
        self.submit_events(
            [Event(entry.user_id, movie_id, kind, client_event_id=f"fb:{session_id}:{movie_id}")]
        )
        return fb

    # -- experiments (cinerec.experiments) -------------------------------------------------
    def create_experiment(
        self,
        name: str,
        variants: Sequence[Variant],
        *,
        metric: str = "like_rate",
        salt: str | None = None,
    ) -> Experiment:
        """Start an A/B experiment (at most one runs at a time); users are split between
        the variants from their next list on."""
        sources = sorted(self.engine.recommenders)
        try:
            exp = self.experiments.create(name, variants, sources, metric=metric, salt=salt)
        except ExperimentConflictError as exc:
            raise ConflictError(str(exc)) from exc
        except ExperimentError as exc:
            raise InvalidInputError(str(exc)) from exc
        self._assignment_changed()
        return exp

    def experiment(self, experiment_id: str) -> Experiment:
        exp = self.experiments.get(experiment_id)
        if exp is None:
            raise NotFoundError(f"no experiment {experiment_id!r}")
        return exp

    def list_experiments(self) -> list[Experiment]:
        return self.experiments.list()

    def experiment_report(self, experiment_id: str) -> dict[str, Any]:
        """Per-variant figures with 95 % intervals and the verdict (flushes the log first,
        so every list answered so far counts)."""
        self.experiment(experiment_id)
        self.rec_log.flush()
        return self.experiments.report(experiment_id)

    def stop_experiment(self, experiment_id: str) -> Experiment:
        """Stop a running experiment: everyone gets the default setting again."""
        return self._experiment_change(lambda: self.experiments.stop(experiment_id))

    def promote_variant(self, experiment_id: str, variant: str) -> Experiment:
        """Make a variant's setting what everyone gets (persisted; stops the experiment)."""
        return self._experiment_change(lambda: self.experiments.promote(experiment_id, variant))

    def _experiment_change(self, change: Callable[[], Experiment]) -> Experiment:
        try:
            exp = change()
        except LookupError as exc:
            raise NotFoundError(str(exc)) from exc
        except ExperimentConflictError as exc:
            raise ConflictError(str(exc)) from exc
        except ExperimentError as exc:
            raise InvalidInputError(str(exc)) from exc
        self._assignment_changed()
        return exp


def _main_source(items: Sequence[Recommended], forced: str | None) -> str:
    if forced:
        return forced
    counts: dict[str, int] = {}
    for it in items:
        counts[it.source] = counts.get(it.source, 0) + 1
    return max(counts, key=lambda s: counts[s]) if counts else "none"
