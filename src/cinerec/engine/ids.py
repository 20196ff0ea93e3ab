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
        self._ext: list[str | None] = []  # None: forgotten
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

    def forget(self, ext: str) -> int | None:
        """Drop an id (its int is never given out again); returns the int it had. The int
        reads back as a placeholder no outside id can be (``"\\x00<int>"``: ids are
        printable), so arrays indexed by ints keep their shape.

        >>> m = IdMap(["a", "b"]); m.forget("a"), m.get("a"), m.add("c"), m.externals([0, 2])
        (0, None, 2, ['\\x000', 'c'])
        """
        idx = self._int.pop(ext, None)
        if idx is not None:
            self._ext[idx] = None
        return idx

    def external(self, idx: int) -> str:
        ext = self._ext[idx]
        return f"\x00{idx}" if ext is None else ext

    def externals(self, idxs: Iterable[int]) -> list[str]:
        ext = self._ext
        return [f"\x00{i}" if (e := ext[int(i)]) is None else e for i in idxs]

    def to_array(self) -> np.ndarray:
        return np.array(self.externals(range(len(self._ext))), dtype=object)
