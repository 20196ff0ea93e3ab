"""Serving state shared by API replicas, in Redis (the topology; ``cinerec serve`` keeps it in
process).

- ``plan:<user>``: the user's candidates in serving order (a list; the worker writes it when
  the user's events are stored or the models change); ``plan:`` is the shared plan of users
  with no history.
- ``shown:<user>``: every movie shown to the user or acted on (a set). A list is *claimed*
  by one Lua script that walks the plans and adds each movie to the set, keeping those that
  were not in it yet (``SADD`` answers 1): two replicas serving the same user at the same
  moment get disjoint lists, without a lock.
- ``replan``: users whose plan ran dry (the worker makes theirs again).
- ``counters``: counts shared by every role (lists served, events stored).

Redis keeps nothing on disk here: the durable truth is the database's recommendation log.
A shown set carries a marker member once it has been filled from that log; when Redis lost
it (a restart, an eviction) the claim answers "restore" and the replica refills it from the
database before serving. The ``cinerec-sync:`` keys (outside the cache's prefix, so
``/cleanup`` keeps counting) tell every process that the catalogue or the users' favourite
genres changed, or that everything was wiped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from cinerec.engine import Recommended

PREFIX = "cinerec:"
SYNC_PREFIX = "cinerec-sync:"
#: the member that says "this shown set was filled from the database"
RESTORED = "\x00restored"
#: what other processes reload when it changes: the catalogue (movies added or hidden), the
#: users (favourite genres), everything (a wipe)
TOPICS = ("catalog", "users", "wipe")
#: separates a plan item's source from its movie id (ids may hold anything else printable)
SEP = "\x1f"
#: a user idle this long loses their plan and shown set from Redis (the log restores the set)
IDLE_TTL_S = 7 * 86_400

# KEYS: shown set, user plan, shared plan, counters; ARGV: k, use plans (1/0), ttl, marker,
# separator, count the list (1/0), extra items...
# Returns {restore flag, plan dry flag, items...}.
CLAIM = """
if redis.call('SISMEMBER', KEYS[1], ARGV[4]) == 0 then return {1, 0} end
local k = tonumber(ARGV[1])
local out = {}
local function walk(items, first)
  for i = first, #items do
    if #out >= k then return end
    local it = items[i]
    local cut = string.find(it, ARGV[5], 1, true)
    if redis.call('SADD', KEYS[1], string.sub(it, cut + 1)) == 1 then
      out[#out + 1] = it
    end
  end
end
local dry = 0
if ARGV[2] == '1' then
  walk(redis.call('LRANGE', KEYS[2], 0, -1), 1)
  if #out < k then
    dry = 1
    walk(redis.call('LRANGE', KEYS[3], 0, -1), 1)
  end
end
walk(ARGV, 7)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
if ARGV[6] == '1' then redis.call('HINCRBY', KEYS[4], 'lists', 1) end
local res = {0, dry}
for i = 1, #out do res[#res + 1] = out[i] end
return res
"""


@dataclass(slots=True)
class Claim:
    items: list[Recommended] = field(default_factory=list)
    #: the shown set is missing from Redis: restore it from the database, then claim again
    restore: bool = False
    #: the user's own plan could not fill the list (missing or used up)
    dry: bool = False


def _item(r: Recommended) -> str:
    return f"{r.source}{SEP}{r.movie_id}"


class SharedState:
    def __init__(self, url: str) -> None:
        import redis

        self.url = url
        self.client = redis.Redis.from_url(
            url, socket_timeout=2, socket_connect_timeout=2, decode_responses=True
        )
        self._claim = self.client.register_script(CLAIM)

    # -- plans (the worker writes, the API reads) ------------------------------------------
    def put_plan(self, user_id: str | None, items: Sequence[Recommended]) -> None:
        """Replace a user's plan (None: the shared plan of users with no history)."""
        key = PREFIX + "plan:" + (user_id or "")
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(key)
        if items:
            pipe.rpush(key, *(_item(r) for r in items))
            if user_id is not None:
                pipe.expire(key, IDLE_TTL_S)
        pipe.execute()

    def has_plan(self, user_id: str | None) -> bool:
        return bool(self.client.exists(PREFIX + "plan:" + (user_id or "")))

    def claim(
        self,
        user_id: str,
        k: int,
        *,
        plans: bool = True,
        extra: Sequence[Recommended] = (),
        count: bool = True,
    ) -> Claim:
        """Up to ``k`` movies never shown to this user, from the user's plan, then the shared
        plan (with ``plans``), then ``extra``; they join the shown set in the same step (and
        the shared count of lists moves, unless ``count`` is off: a list topped up)."""
        res: list[Any] = self._claim(
            keys=[
                PREFIX + "shown:" + user_id,
                PREFIX + "plan:" + user_id,
                PREFIX + "plan:",
                PREFIX + "counters",
            ],
            args=[
                k,
                "1" if plans else "0",
                IDLE_TTL_S,
                RESTORED,
                SEP,
                "1" if count else "0",
                *map(_item, extra),
            ],
        )
        if int(res[0]):
            return Claim(restore=True)
        items = []
        for it in res[2:]:
            source, _, movie = str(it).partition(SEP)
            items.append(Recommended(movie, source, 0.0))
        return Claim(items, dry=bool(int(res[1])))

    def restore(self, user_id: str, movies: Iterable[str]) -> None:
        """Fill a user's shown set from the database (with the marker that says so)."""
        key = PREFIX + "shown:" + user_id
        pipe = self.client.pipeline(transaction=True)
        pipe.sadd(key, RESTORED, *movies)
        pipe.expire(key, IDLE_TTL_S)
        pipe.execute()

    def shown(self, user_id: str) -> set[str]:
        """Every movie in the user's shown set (a plan ran dry: the replica's engine is asked
        for candidates outside it)."""
        got = cast(set[str], self.client.smembers(PREFIX + "shown:" + user_id))
        got.discard(RESTORED)
        return got

    def release(self, user_id: str, movies: Sequence[str]) -> None:
        """Give back movies claimed for a list the client never received (it could not be
        logged: the answer was 503), so they are not lost to the user."""
        if movies:
            self.client.srem(PREFIX + "shown:" + user_id, *movies)

    def mark_seen(self, user_id: str, movies: Iterable[str]) -> None:
        """Movies the user acted on never come back (a set without the marker is restored
        from the database first, so adding to it early loses nothing)."""
        movies = list(movies)
        if movies:
            self.client.sadd(PREFIX + "shown:" + user_id, *movies)

    # -- the worker's to-do list -----------------------------------------------------------
    def ask_replan(self, user_id: str) -> None:
        self.client.rpush(PREFIX + "replan", user_id)

    def take_replans(self, limit: int = 100) -> list[str]:
        pipe = self.client.pipeline(transaction=True)
        pipe.lrange(PREFIX + "replan", 0, limit - 1)
        pipe.ltrim(PREFIX + "replan", limit, -1)
        got, _ = pipe.execute()
        return list(dict.fromkeys(got))

    # -- counters and versions -------------------------------------------------------------
    def count(self, name: str, n: int = 1) -> None:
        self.client.hincrby(PREFIX + "counters", name, n)

    def counters(self) -> dict[str, int]:
        raw = cast(dict[str, str], self.client.hgetall(PREFIX + "counters"))
        return {k: int(v) for k, v in raw.items()}

    def bump(self, what: str) -> None:
        """Tell every process that ``what`` (one of :data:`TOPICS`) changed."""
        self.client.incr(SYNC_PREFIX + what)

    def versions(self) -> dict[str, int]:
        """The version of each topic: a process that sees one move reloads that part."""
        got = cast(list[str | None], self.client.mget([SYNC_PREFIX + t for t in TOPICS]))
        return {t: int(v or 0) for t, v in zip(TOPICS, got, strict=True)}

    def ping(self) -> None:
        self.client.ping()
