"""Operating-system names for the service's threads.

Python names its threads for itself only; ``top -H``, ``/proc/<pid>/task/*/comm`` and
``benchmarks/recs_throughput.py`` (CPU time per thread) see every thread under the process's
name. A thread the service owns calls :func:`name_os_thread` first thing, so its Python name
(``plan-refresher``, ``rec-log-writer``, ...) shows there too.
"""

from __future__ import annotations

import ctypes
import sys
import threading

_PR_SET_NAME = 15
# The process's own symbols, libc's among them (``ctypes.util.find_library`` would run
# ``ldconfig`` in a subprocess at import: ~30 ms of every start-up).
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


def name_os_thread() -> None:
    """Give the calling thread's OS name its Python name (Linux keeps the first 15 bytes;
    elsewhere nothing happens)."""
    if _libc is None:
        return
    name = threading.current_thread().name.encode()[:15]
    _libc.prctl(_PR_SET_NAME, ctypes.c_char_p(name), 0, 0, 0)
