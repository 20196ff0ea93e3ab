"""Training runs as background jobs (``POST /api/v1/admin/train`` answers 202 at once).

One worker thread runs one job at a time at the lowest CPU priority. A request that arrives
while a job of the same mode waits or runs gets that job's id instead of a new one
(coalescing): forty calls make at most one run plus one queued, never forty.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field

from cinerec.threads import name_os_thread
from cinerec.training.schedule import _lowest_cpu_priority
from cinerec.training.trainer import Trainer, TrainReport

log = logging.getLogger(__name__)

#: finished jobs kept for ``GET /api/v1/admin/jobs/{id}``
KEEP_FINISHED = 100


@dataclass(slots=True)
class Job:
    id: str
    mode: str
    status: str = "queued"  # queued | running | succeeded | failed
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    report: TrainReport | None = None
    error: str | None = None


class TrainingJobs:
    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._queue: list[Job] = []
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def submit(self, mode: str) -> tuple[Job, bool]:
        """Queue a run of ``mode``; returns ``(job, created)``: an existing queued or running
        job of the same mode is returned instead of a new one."""
        if mode not in ("full", "incremental"):
            raise ValueError("mode must be 'full' or 'incremental'")
        with self._cv:
            for job in self._jobs.values():
                if job.mode == mode and job.status in ("queued", "running"):
                    return job, False
            job = Job(uuid.uuid4().hex, mode)
            self._jobs[job.id] = job
            self._queue.append(job)
            self._trim()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="train-jobs", daemon=True)
                self._thread.start()
            self._cv.notify()
            return job, True

    def get(self, job_id: str) -> Job | None:
        with self._cv:
            return self._jobs.get(job_id)

    def stop(self) -> None:
        with self._cv:
            self._stopped = True
            self._cv.notify()

    def _trim(self) -> None:
        finished = [j.id for j in self._jobs.values() if j.status in ("succeeded", "failed")]
        for job_id in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self._jobs[job_id]

    def _run(self) -> None:
        name_os_thread()
        _lowest_cpu_priority()
        while True:
            with self._cv:
                while not self._queue and not self._stopped:
                    self._cv.wait()
                if self._stopped:
                    return
                job = self._queue.pop(0)
                job.status, job.started_at = "running", time.time()
            try:
                report = self.trainer.train(job.mode)
            except Exception as exc:
                log.exception("training job %s failed", job.id)
                with self._cv:
                    job.status, job.error = "failed", f"{type(exc).__name__}"
                    job.finished_at = time.time()
                continue
            with self._cv:
                job.status, job.report, job.finished_at = "succeeded", report, time.time()
