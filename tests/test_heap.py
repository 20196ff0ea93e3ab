"""The heap settler: what is alive leaves the collector's passes; a full settle frees the
garbage among frozen objects."""

from __future__ import annotations

import gc
import time
import weakref

from cinerec.heap import HeapSettler, settle


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


def tracked(obj: object) -> bool:
    """Whether ``obj`` is in a generation the collector's passes walk (not frozen)."""
    return any(o is obj for o in gc.get_objects())


def test_settle_freezes_what_is_alive_and_a_full_settle_frees_frozen_garbage() -> None:
    try:
        node = Node()
        ref = weakref.ref(node)
        assert tracked(node)
        settle()
        assert not tracked(node)  # frozen: passes skip it
        del node
        gc.collect()
        assert ref() is not None  # garbage now, but frozen: a pass does not see it
        settle(full=True)
        assert ref() is None
    finally:
        gc.unfreeze()


def test_the_settler_freezes_in_the_background_and_settles_fully_on_demand() -> None:
    settler = HeapSettler(every_s=0.01, full_every_s=3600).start()
    try:
        node = Node()
        ref = weakref.ref(node)
        deadline = time.monotonic() + 5
        while tracked(node) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not tracked(node)
        del node
        settler.full()  # a training run finished
        assert ref() is None
    finally:
        settler.close()
        gc.unfreeze()
    assert not settler.thread.is_alive()
