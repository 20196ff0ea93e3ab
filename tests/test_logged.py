"""An answer waits for its list's commit, and no longer than LOG_TIMEOUT_S."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import pytest

import cinerec.service as service
from cinerec.domain import RecLogEntry
from cinerec.service import RecLogWriter, RecResult, UnavailableError, _settle, logged


def test_an_answer_gives_up_on_a_commit_that_never_comes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "LOG_TIMEOUT_S", 0.05)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stuck: asyncio.Future[None] = loop.create_future()
        with pytest.raises(UnavailableError, match="could not be stored"):
            await logged(RecResult("u", "s", [], "popular", logged=stuck))
        _settle([stuck], None)  # the writer's late answer finds it failed already
        committed: asyncio.Future[None] = loop.create_future()
        loop.call_later(0.01, _settle, [committed], None)
        await logged(RecResult("u", "s", [], "popular", logged=committed))

    asyncio.run(main())


class CountingStore:
    """Records the size of each commit of the recommendation log."""

    def __init__(self) -> None:
        self.commits: list[list[str]] = []

    def log_recommendations(self, entries: Iterable[RecLogEntry]) -> None:
        self.commits.append([e.session_id for e in entries])


def test_the_lists_of_one_loop_pass_share_one_commit_and_flush_waits_for_all() -> None:
    store = CountingStore()
    writer = RecLogWriter(store)  # type: ignore[arg-type]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        # Twenty answers made in one pass of the loop (as a busy fast path makes them).
        futs = [writer.put(RecLogEntry(f"s{i}", "u", ["m1"], ["popular"], "popular"), loop)
                for i in range(20)]  # fmt: skip
        assert writer.backlog == 20
        await asyncio.gather(*futs)
        # A list from a worker thread (no loop) is written on its own.
        await asyncio.to_thread(
            lambda: writer.put(RecLogEntry("t", "u", ["m2"], ["popular"], "popular")).result(5)
        )
        # A list still waiting for its pass to end is stored by flush() (called here on the
        # loop itself, so the pass cannot end first).
        writer.put(RecLogEntry("late", "u", ["m3"], ["popular"], "popular"), loop)
        writer.flush()
        assert writer.backlog == 0

    try:
        asyncio.run(main())
    finally:
        writer.close()
    assert store.commits == [[f"s{i}" for i in range(20)], ["t"], ["late"]]
