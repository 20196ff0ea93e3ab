"""String ids outside, dense integers inside (after RecTools ``IdMap``)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


class IdMap:
    """Append-only bijection between external string ids and dense ints ``0..n-1``.

    >>> m = IdMap(); m.add("m42"), m.add("m7"), m.add("m42")
    (0, 1, 0)
    >>> m.external(1), m.get("nope")
    ('m7', None)
    """

    __slots__ = ("_ext", "_int")

    def __init__(self, ids: Iterable[str] = ()) -> None:
        self._int: dict[str, int] = {}
        self._ext: list[str] = []
        for i in ids:
            self.add(i)

    def __len__(self) -> int:
        return len(self._ext)

    def __contains__(self, ext: object) -> bool:
        return ext in self._int

    def add(self, ext: str) -> int:
        idx = self._int.get(ext)
        if idx is None:
            idx = len(self._ext)
            self._int[ext] = idx
            self._ext.append(ext)
        return idx

    def get(self, ext: str) -> int | None:
        return self._int.get(ext)

    def external(self, idx: int) -> str:
        return self._ext[idx]

    def externals(self, idxs: Iterable[int]) -> list[str]:
        ext = self._ext
        return [ext[int(i)] for i in idxs]

    def to_array(self) -> np.ndarray:
        return np.array(self._ext, dtype=object)
