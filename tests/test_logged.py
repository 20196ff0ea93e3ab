"""An answer waits for its list's commit, and no longer than LOG_TIMEOUT_S."""

from __future__ import annotations

import asyncio

import pytest

import cinerec.service as service
from cinerec.service import RecResult, UnavailableError, _settle, logged


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
