"""The embedded schedule: a background thread that trains when :meth:`Trainer.due` says so,
at the lowest CPU priority."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from cinerec.threads import name_os_thread
from cinerec.training.trainer import Trainer

log = logging.getLogger(__name__)


#: how often the scheduler runs its housekeeping (retention of the rec log, token revocations)
HOUSEKEEPING_S = 3600.0


class Scheduler:
    """Background thread: trains when :meth:`Trainer.due` says so (embedded server), and
    runs ``housekeeping`` (:meth:`RecService.housekeeping`) every ``HOUSEKEEPING_S``."""

    def __init__(
        self,
        trainer: Trainer,
        tick_s: float = 5.0,
        housekeeping: Callable[[], object] | None = None,
    ) -> None:
        self.trainer = trainer
        self.tick_s = tick_s
        self.housekeeping = housekeeping
        self._housekept = time.monotonic()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="train-scheduler", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        name_os_thread()
        _lowest_cpu_priority()
        while not self._stop.wait(self.tick_s):
            if self.housekeeping and time.monotonic() - self._housekept >= HOUSEKEEPING_S:
                self._housekept = time.monotonic()
                try:
                    self.housekeeping()
                except Exception:
                    log.exception("housekeeping failed")
            try:
                if self.trainer.train_if_due() is None:
                    self.trainer.load_serving()  # pick up models a worker trained
            except Exception:
                log.exception("scheduled training failed")


def _lowest_cpu_priority() -> None:
    """Run the calling thread (and the threads it starts: LightGBM's, OpenBLAS's) at nice 19
    on Linux, where niceness is per thread: when training and requests want the same core,
    the requests get it. Elsewhere, or where the OS refuses, nothing changes."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):
        log.debug("could not lower the training thread's priority")
