"""Thompson sampling over the candidate sources, drawn in batches.

Each source draws from Beta(1 + liked, 1 + shown - liked) of what it showed; the highest draw
wins the list's bandit slot. Drawing that per list is one NumPy call per list, about 30 µs on
the serving path (most of it call overhead: 8 % of the fast path's time in a py-spy profile
of ``benchmarks/recs_throughput.py``). :class:`SourceBandit` draws ``BATCH`` lists' worth in
one call and hands out one row per list instead (about 2 µs each).

The trade-off: a row reflects the tallies of when its batch was drawn, a few lists earlier.
The batch grows with the evidence (one list per ``SHOWN_PER_ROW`` movies shown, at most
``BATCH``), so what a batch has not seen stays around 1 % of what the tallies hold (a list
shows ten movies) and a young service, whose tallies move fast, draws per list as before.
Thompson sampling with delayed feedback is the usual setting anyway: a like arrives seconds
to days after its list. The batch depends on the tallies only, never on the clock, so a
seeded simulation stays reproducible.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

import numpy as np

from cinerec.engine.state import SourceTally

#: most rows drawn at once, and the movies shown (all sources) per row of a batch
BATCH = 64
SHOWN_PER_ROW = 1000

_NO_TALLY = SourceTally()


class SourceBandit:
    """Beta-Bernoulli Thompson sampling over source names, reading the live ``tallies``
    (updated in place by the engine). Safe to call from several threads."""

    def __init__(
        self,
        tallies: Mapping[str, SourceTally],
        rng: np.random.Generator,
        batch: int = BATCH,
        shown_per_row: int = SHOWN_PER_ROW,
    ) -> None:
        self.tallies = tallies
        self._rng = rng
        self.batch = batch
        self.shown_per_row = shown_per_row
        self._lock = threading.Lock()
        self._cols: dict[str, int] = {}
        self._rows: list[list[float]] = []
        self._at = 0

    def draws(self, sources: Sequence[str]) -> list[float]:
        """One Thompson draw per source, in the order of ``sources``."""
        with self._lock:
            cols = self._cols
            if self._at >= len(self._rows) or any(s not in cols for s in sources):
                cols = self._refill(sources)
            row = self._rows[self._at]
            self._at += 1
        return [row[cols[s]] for s in sources]

    def best(self, sources: Sequence[str]) -> str:
        """The source with the highest draw (the first of equals)."""
        d = self.draws(sources)
        return sources[d.index(max(d))]

    def order(self, sources: Sequence[str]) -> list[str]:
        """``sources`` by one draw each, highest first (equals keep their order)."""
        d = self.draws(sources)
        return [sources[j] for j in sorted(range(len(d)), key=lambda j: -d[j])]

    def _refill(self, sources: Sequence[str]) -> dict[str, int]:
        names = sorted({*self.tallies, *self._cols, *sources})
        tallies = [self.tallies.get(s, _NO_TALLY) for s in names]
        liked = np.array([t.liked for t in tallies], dtype=np.float64)
        shown = np.array([t.shown for t in tallies], dtype=np.float64)
        rows = min(self.batch, max(1, int(shown.sum()) // self.shown_per_row))
        self._rows = self._rng.beta(
            1 + liked, 1 + np.maximum(shown - liked, 0), size=(rows, len(names))
        ).tolist()
        self._cols = {name: j for j, name in enumerate(names)}
        self._at = 0
        return self._cols
