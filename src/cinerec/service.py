"""The service layer: every use case of the product, free of HTTP.

The API routes, the CLI, the simulator and (later) the trainer call :class:`RecService`.
Writes go to the store first (durable), then to the engine (visible to the next request).
"""

from __future__ import annotations

import asyncio
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

from tqdm import tqdm

from cinerec.cache import Cache, open_cache
from cinerec.config import Settings
from cinerec.domain import Event, EventKind, Feedback, Movie, RecLogEntry, User
from cinerec.engine import Engine, Recommended
from cinerec.engine.explain import Reason
from cinerec.store import Store, open_store
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


def wait_logged(result: RecResult) -> None:
    """Block until ``result``'s list is durable in the recommendation log (worker threads)."""
    if result.logged is None:
        return
    try:
        result.logged.result(timeout=LOG_TIMEOUT_S)
    except Exception as exc:
        raise UnavailableError("the list could not be stored; retry shortly") from exc


async def logged(result: RecResult) -> None:
    """Wait on the event loop until ``result``'s list is durable in the recommendation log."""
    if result.logged is None:
        return
    try:
        await asyncio.wait_for(asyncio.wrap_future(result.logged), LOG_TIMEOUT_S)
    except Exception as exc:
        raise UnavailableError("the list could not be stored; retry shortly") from exc


class ForbiddenError(PermissionError):
    """The caller may not act on this (another user's session)."""


@dataclass(slots=True)
class RecResult:
    user_id: str
    session_id: str
    items: list[Recommended]
    #: the source that produced most of the list (contract B's ``source``)
    source: str
    model_version: str | None = None
    #: resolves once the list is in the recommendation log (what the user was shown survives
    #: a crash from then on); None for a preview. HTTP answers wait for it.
    logged: Future[None] | None = None


@dataclass(slots=True)
class EventsResult:
    accepted: int
    duplicates: int
    unknown_movies: list[str] = field(default_factory=list)


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
        self.q: queue.Queue[tuple[RecLogEntry, Future[None]] | None] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="rec-log-writer", daemon=True)
        self.thread.start()

    def put(self, entry: RecLogEntry) -> Future[None]:
        fut: Future[None] = Future()
        self.q.put((entry, fut))
        return fut

    def _run(self) -> None:
        while True:
            first = self.q.get()
            if first is None:
                self.q.task_done()
                return
            batch = [first]
            while len(batch) < 500:
                try:
                    nxt = self.q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self.q.put(None)  # stop after this batch
                    self.q.task_done()
                    break
                batch.append(nxt)
            try:
                self._write(batch)
            finally:
                for _ in batch:
                    self.q.task_done()

    def _write(self, batch: list[tuple[RecLogEntry, Future[None]]]) -> None:
        try:
            self.store.log_recommendations([e for e, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                entry, fut = batch[0]
                log.exception("could not write the log of session %s", entry.session_id)
                fut.set_exception(exc)
                return
            # One entry the database refuses (PostgreSQL: a user id longer than its column, a
            # NUL character) must not lose the other entries of the batch.
            for one in batch:
                self._write([one])
            return
        for _, fut in batch:
            fut.set_result(None)

    def flush(self) -> None:
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
        self, settings: Settings, store: Store | None = None, cache: Cache | None = None
    ) -> None:
        self.settings = settings
        self.store = store or open_store(settings.database_url)
        self.cache = cache or open_cache(settings.cache_url)
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
        self._wipe_lock = threading.Lock()
        self.started_at = time.time()
        #: called after every list with (result, seconds, forced source): the metrics hook
        self.rec_listeners: list[Callable[[RecResult, float, str | None], None]] = []
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
        for entry in self.store.iter_rec_log():
            eng.mark_shown(entry.user_id, entry.movie_ids, entry.sources)
        self.trainer.load_serving()
        self.trainer.last_trained_events = eng.n_events
        # Plans for everyone who has a history, in the background: the first list after a
        # restart is served from one.
        eng.refresh([None])
        for state in list(eng.users.values()):
            if state.interactions or state.favorite_genres:
                self.refresher.put(state.id)
        self.loaded = True

    def load_demo_if_empty(self, path: Path | None = None) -> bool:
        if self.store.count_movies() > 0:
            return False
        from cinerec.ingest import import_movielens

        import_movielens(self.store, path or self.settings.demo_path or DEMO_PATH, progress=True)
        return True

    def close(self) -> None:
        self.refresher.close()
        self.rec_log.close()
        self.store.close()

    def cleanup(self) -> None:
        """Forget everything: catalogue, users, events, logs, caches, models."""
        with self._wipe_lock, self.engine.lock:
            self.rec_log.flush()
            self.store.wipe()
            self.engine.reset()
            self.trainer.forget()
            self.cache.clear()

    def _checks(self) -> dict[str, dict[str, Any]]:
        """Ping each dependency (database, cache): status and latency, or what failed."""
        checks: dict[str, dict[str, Any]] = {}
        for name, probe in (("database", self.store.ping), ("cache", self.cache.ping)):
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

    def add_users(self, users: Sequence[User]) -> int:
        for u in users:
            self._check_genres(u.favorite_genres)
        n = self.store.upsert_users(users)
        for u in users:
            self.engine.set_favorite_genres(u.id, u.favorite_genres)
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
        return clean

    @staticmethod
    def _check_genres(genres: Sequence[str]) -> None:
        if len(genres) > MAX_FAVORITE_GENRES:
            raise InvalidInputError(
                f"at most {MAX_FAVORITE_GENRES} favourite genres, got {len(genres)}"
            )

    # -- events --------------------------------------------------------------------------
    def record_events(self, events: Sequence[Event]) -> EventsResult:
        """Store events durably, then make them visible to recommendations.

        Events for movies not (yet) in the catalogue are kept; the engine ignores them for
        recommendations until the movie is added.
        """
        fresh = self.store.add_events(events)
        new = [e for e, f in zip(events, fresh, strict=True) if f]
        self.engine.apply_events(new)
        catalog = self.engine.catalog
        unknown = sorted({e.movie_id for e in new if not catalog.is_active(e.movie_id)})
        # Work on write: the users who acted get their next list's plan now, so that list
        # is served at once and reflects what they did. A large batch (an import) leaves
        # its users to be planned on their next request.
        users = list(dict.fromkeys(e.user_id for e in new))
        if len(users) <= REFRESH_ON_WRITE:
            self.engine.refresh(users)
        else:
            for user in users:
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
        """``record=False`` is a preview: nothing is logged or marked shown."""
        k = k or self.settings.recommendation_size
        t0 = time.perf_counter()
        items = self.engine.recommend(
            user_id,
            k,
            source=source,
            exclude=exclude,
            genres=genres,
            explore=explore,
            mark_shown=record,
        )
        return self._result(user_id, items, source, session_id, record, t0)

    def try_recommend(self, user_id: str, explore: bool = True) -> RecResult | None:
        """The default list, if it can be served at once from a plan without waiting for
        the engine (the event loop's fast path); None otherwise: then call
        :meth:`recommend` from a worker thread."""
        t0 = time.perf_counter()
        items = self.engine.try_serve(user_id, self.settings.recommendation_size, explore)
        if items is None:
            return None
        return self._result(user_id, items, None, None, True, t0)

    def _result(
        self,
        user_id: str,
        items: list[Recommended],
        source: str | None,
        session_id: str | None,
        record: bool,
        t0: float,
    ) -> RecResult:
        session_id = session_id or os.urandom(16).hex()  # uuid4's cost, a tenth
        main = _main_source(items, source)
        logged = None
        if record:
            logged = self.rec_log.put(
                RecLogEntry(
                    session_id,
                    user_id,
                    [i.movie_id for i in items],
                    [i.source for i in items],
                    main,
                )
            )
        result = RecResult(user_id, session_id, items, main, logged=logged)
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
        return self.record_events([Event(user_id, movie_id, EventKind.NOT_INTERESTED)])

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
        self.record_events(
            [Event(entry.user_id, movie_id, kind, client_event_id=f"fb:{session_id}:{movie_id}")]
        )
        return fb


def _main_source(items: Sequence[Recommended], forced: str | None) -> str:
    if forced:
        return forced
    counts: dict[str, int] = {}
    for it in items:
        counts[it.source] = counts.get(it.source, 0) + 1
    return max(counts, key=lambda s: counts[s]) if counts else "none"
