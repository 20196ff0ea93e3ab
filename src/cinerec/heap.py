"""Keeping the garbage collector's full passes short in a long-running server process.

CPython's cyclic collector walks every container object it tracks on a full pass, holding
the GIL: the event loop answers nothing meanwhile. A server's heap is mostly long-lived
state (the users, their plans, the catalogue, anonymous viewers) that holds no garbage,
yet full passes over it came every second or two under load and took 40-200 ms each: the
tail of ``/recs`` latency grew run after run (benchmarks/recs_throughput.py: p99 15 -> 40-77
ms over three 10 s runs; with the settler, 13-27 ms).

:class:`HeapSettler` moves what is alive out of the collector's sight (``gc.freeze``) every
``SETTLE_S``, after collecting what is garbage then; a full pass then walks only what was
made since. Garbage among frozen objects (a cycle that became unreachable after it was
frozen: the models a training run replaced) is reclaimed by a full settle, which unfreezes
everything first: after each training run and every ``FULL_SETTLE_S``.
"""

from __future__ import annotations

import gc
import threading
import time

from cinerec.threads import name_os_thread

#: how often what is alive is frozen (each time, a pass over what was made since: a few ms)
SETTLE_S = 2.0
#: how often everything is collected, frozen objects included (a pass over the whole heap)
FULL_SETTLE_S = 600.0


def settle(full: bool = False) -> None:
    """Collect the garbage, then freeze what is left; ``full``: the frozen objects too."""
    if full:
        gc.unfreeze()
    gc.collect()
    gc.freeze()


class HeapSettler:
    """A background thread that settles the heap every ``every_s`` seconds, fully every
    ``full_every_s``; :meth:`full` settles fully now (after a training run, say)."""

    def __init__(self, every_s: float = SETTLE_S, full_every_s: float = FULL_SETTLE_S) -> None:
        self.every_s = every_s
        self.full_every_s = full_every_s
        self._lock = threading.Lock()
        self._last_full = time.monotonic()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="heap-settler", daemon=True)

    def start(self) -> HeapSettler:
        self.full()
        self.thread.start()
        return self

    def full(self, *_: object) -> None:
        """Settle fully now (any arguments are ignored: a listener's)."""
        with self._lock:
            settle(full=True)
            self._last_full = time.monotonic()

    def _run(self) -> None:
        name_os_thread()
        while not self._stop.wait(self.every_s):
            if time.monotonic() - self._last_full >= self.full_every_s:
                self.full()
                continue
            with self._lock:
                settle()

    def close(self) -> None:
        self._stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout=10)
