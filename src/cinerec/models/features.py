"""Side-feature matrices for hybrid models, aligned with dense ids.

Item features: identity (one column per item, so warm items keep a free embedding) + one-hot
genres + a decade bucket. User features: the user's favourite genres (share of their positive
interactions per genre, top ``n``). Rows are L1-normalised by default, as LightFM's own
``Dataset`` does, so a movie with five genres does not get five times the feature signal.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import scipy.sparse as sp

__all__ = [
    "cold_item_features",
    "decade_bucket",
    "genre_vocabulary",
    "item_features",
    "user_genre_features",
]


def decade_bucket(year: int | None) -> str:
    """``1994 -> "decade:1990"``, ``1931 -> "decade:<1940"``, ``None -> "decade:unknown"``.

    >>> decade_bucket(1994), decade_bucket(1931), decade_bucket(None)
    ('decade:1990', 'decade:<1940', 'decade:unknown')
    """
    if year is None:
        return "decade:unknown"
    if year < 1940:
        return "decade:<1940"
    return f"decade:{year // 10 * 10}"


def genre_vocabulary(genres: Iterable[Iterable[str]]) -> list[str]:
    """Sorted distinct genres."""
    return sorted({g for gs in genres for g in gs})


def _row_normalize(m: sp.csr_matrix) -> sp.csr_matrix:
    sums = np.asarray(m.sum(axis=1)).ravel()
    sums[sums == 0] = 1.0
    return sp.csr_matrix(sp.diags(1.0 / sums) @ m, dtype=np.float32)


def item_features(
    genres: Sequence[Iterable[str]],
    years: Sequence[int | None],
    identity: bool = True,
    normalize: bool = True,
    vocabulary: Sequence[str] | None = None,
) -> tuple[sp.csr_matrix, list[str]]:
    """Item feature matrix.

    Args:
        genres: per dense item id, its genres.
        years: per dense item id, its release year or None.
        identity: prepend one indicator column per item.
        normalize: L1-normalise each row.
        vocabulary: fixed feature names (genres and decade buckets) to keep columns stable
            across refits; by default built from the data.

    Returns:
        ``(matrix, names)``: float32 CSR ``(n_items, n_identity + n_named)`` and the names of
        the non-identity columns, in column order after the identity block.

    >>> m, names = item_features([["Drama"], ["Comedy", "Drama"]], [1994, None], normalize=False)
    >>> m.shape, names
    ((2, 6), ['Comedy', 'Drama', 'decade:1990', 'decade:unknown'])
    """
    if len(genres) != len(years):
        raise ValueError("genres and years must be aligned with the same dense item ids")
    n = len(genres)
    rows_tags = [
        [*dict.fromkeys(gs), decade_bucket(y)] for gs, y in zip(genres, years, strict=True)
    ]
    names = (
        list(vocabulary)
        if vocabulary is not None
        else sorted({t for tags in rows_tags for t in tags if not t.startswith("decade:")})
        + sorted({t for tags in rows_tags for t in tags if t.startswith("decade:")})
    )
    col = {name: i for i, name in enumerate(names)}
    offset = n if identity else 0
    rows: list[int] = []
    cols: list[int] = []
    for i, tags in enumerate(rows_tags):
        if identity:
            rows.append(i)
            cols.append(i)
        for t in tags:
            if t in col:
                rows.append(i)
                cols.append(offset + col[t])
    m = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n, offset + len(names))
    )
    return (_row_normalize(m) if normalize else m), names


def cold_item_features(
    genres: Sequence[Iterable[str]],
    years: Sequence[int | None],
    vocabulary: Sequence[str],
    normalize: bool = True,
) -> sp.csr_matrix:
    """Side-feature rows of items a model was not fitted on, in a fitted model's columns.

    The row an item would have had in :func:`item_features` (identity on, same
    ``vocabulary``), with its identity column dropped: a model that learned one embedding per
    feature can then represent the item from its genres and decade alone. With ``normalize``
    the identity still counts in the L1 norm, so the weights match those of a fitted item
    (whose identity embedding carries its individual part).

    Returns:
        float32 CSR ``(n_items, len(vocabulary))``.

    >>> cold_item_features([["Horror"]], [1994], ["Comedy", "Horror", "decade:1990"]).toarray()
    array([[0.        , 0.33333334, 0.33333334]], dtype=float32)
    """
    m, _ = item_features(genres, years, identity=True, normalize=normalize, vocabulary=vocabulary)
    return sp.csr_matrix(m[:, len(genres) :], dtype=np.float32)


def user_genre_features(
    interactions: sp.csr_matrix,
    item_genres: Sequence[Iterable[str]],
    vocabulary: Sequence[str],
    top_n: int = 3,
    normalize: bool = True,
) -> sp.csr_matrix:
    """Favourite-genre features: ``(n_users, len(vocabulary))`` float32 CSR.

    Each user's positive interactions vote for their items' genres; the ``top_n`` genres are
    kept with their vote share (renormalised when ``normalize``). Users without likes get an
    empty row.

    >>> import scipy.sparse as sp
    >>> x = sp.csr_matrix([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    >>> user_genre_features(x, [["Drama"], ["Drama", "War"], ["Comedy"]],
    ...                     ["Comedy", "Drama", "War"], top_n=1).toarray().tolist()
    [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    """
    col = {g: i for i, g in enumerate(vocabulary)}
    item_rows: list[int] = []
    item_cols: list[int] = []
    for i, gs in enumerate(item_genres):
        for g in gs:
            if g in col:
                item_rows.append(i)
                item_cols.append(col[g])
    n_items = interactions.shape[1]
    ig = sp.csr_matrix(
        (np.ones(len(item_rows), dtype=np.float32), (item_rows, item_cols)),
        shape=(len(item_genres), len(vocabulary)),
    )
    if ig.shape[0] < n_items:
        ig = sp.vstack([ig, sp.csr_matrix((n_items - ig.shape[0], len(vocabulary)))]).tocsr()
    pos = interactions.copy()
    pos.data = (pos.data > 0).astype(np.float32)
    votes = np.asarray((pos @ ig[:n_items]).toarray())
    if top_n < votes.shape[1]:
        cut = np.argpartition(-votes, top_n - 1, axis=1)[:, top_n:]
        np.put_along_axis(votes, cut, 0.0, axis=1)
    m = sp.csr_matrix(votes, dtype=np.float32)
    m.eliminate_zeros()
    return _row_normalize(m) if normalize else m
