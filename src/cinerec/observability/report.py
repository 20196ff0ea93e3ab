"""``cinerec report``: online P@K / R@K per source as a table, JSON and a PNG over time.

The same figures as the ``cinerec_online_*`` gauges (:mod:`cinerec.observability.online`),
read from the store: the table covers the whole window, the chart one point per bucket.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cinerec.observability.online import (
    ALL,
    GroupQuality,
    ListScore,
    aggregate,
    aggregate_slots,
    series,
)

#: sources drawn besides ``all`` (more lines than this are unreadable)
MAX_LINES = 7


@dataclass(slots=True)
class Report:
    since: float
    until: float
    ks: tuple[int, ...]
    attribution_s: float
    bucket_s: float
    groups: dict[str, GroupQuality]
    #: (bucket start, groups of that bucket), oldest first
    over_time: list[tuple[float, dict[str, GroupQuality]]]
    slot_precision: dict[str, dict[int, float]]


def build(
    scores: Sequence[ListScore],
    *,
    since: float,
    until: float,
    ks: Sequence[int],
    attribution_s: float,
    bucket_s: float,
) -> Report:
    ks = tuple(ks)
    slots = aggregate_slots(scores, ks)
    return Report(
        since,
        until,
        ks,
        attribution_s,
        bucket_s,
        aggregate(scores, ks),
        series(scores, bucket_s, ks),
        {s: {k: q.precision(k) for k in ks if q.shown.get(k)} for s, q in sorted(slots.items())},
    )


def _order(groups: dict[str, GroupQuality]) -> list[str]:
    """``all`` first, then sources by lists served."""
    rest = sorted((g for g in groups if g != ALL), key=lambda g: (-groups[g].lists, g))
    return ([ALL] if ALL in groups else []) + rest


def table(rep: Report) -> str:
    """Markdown table: one row per list source."""
    head = ["source", "lists", "lists with likes"]
    for k in rep.ks:
        head += [f"P@{k}", f"R@{k}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in _order(rep.groups):
        q = rep.groups[name]
        row = [name, str(q.lists), str(q.lists_with_likes)]
        for k in rep.ks:
            r = q.recall[k]
            row += [f"{q.precision[k]:.4f}", "-" if r is None else f"{r:.4f}"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def to_json(rep: Report) -> dict[str, Any]:
    def group(q: GroupQuality) -> dict[str, Any]:
        return {
            "lists": q.lists,
            "lists_with_likes": q.lists_with_likes,
            "precision": {str(k): v for k, v in q.precision.items()},
            "recall": {str(k): v for k, v in q.recall.items()},
        }

    return {
        "since": rep.since,
        "until": rep.until,
        "attribution_s": rep.attribution_s,
        "bucket_s": rep.bucket_s,
        "groups": {n: group(q) for n, q in rep.groups.items()},
        "slot_precision": {
            s: {str(k): v for k, v in d.items()} for s, d in rep.slot_precision.items()
        },
        "over_time": [
            {"t": t, "groups": {n: group(q) for n, q in g.items()}} for t, g in rep.over_time
        ],
    }


def write_json(rep: Report, path: Path) -> None:
    path.write_text(json.dumps(to_json(rep), indent=2))


def plot(rep: Report, path: Path, k: int = 3) -> None:
    """Three panels over time, one line per list source (all lists, and the ``MAX_LINES``
    sources that served most; the table has every one): lists served, P@k and R@k."""
    import matplotlib

    matplotlib.use("Agg")
    from datetime import UTC, datetime

    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    names = _order(rep.groups)[: MAX_LINES + 1]  # all + the sources that served most lists
    colors = plt.get_cmap("tab10")
    times = [datetime.fromtimestamp(t, UTC) for t, _ in rep.over_time]
    panels = [
        ("lists served", lambda q: float(q.lists)),
        (f"online precision@{k}", lambda q: q.precision.get(k, float("nan"))),
        (
            f"online recall@{k}",
            lambda q: q.recall.get(k) if q.recall.get(k) is not None else float("nan"),
        ),
    ]
    for ax, (title, get) in zip(axes, panels, strict=True):
        for name in names:
            ys = [get(g[name]) if name in g else float("nan") for _, g in rep.over_time]
            style = (
                {"color": "black", "linewidth": 2.2}
                if name == ALL
                else {"color": colors(names.index(name) - 1), "linewidth": 1.2}
            )
            ax.plot(times, ys, marker="o", markersize=3, label=name, **style)
        ax.set_title(title, loc="left", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, ncol=4, loc="upper left")
    fmt = "%H:%M:%S" if rep.bucket_s < 60 else "%m-%d %H:%M"
    axes[-1].xaxis.set_major_formatter(mdates.DateFormatter(fmt))
    axes[-1].set_xlabel(f"time the list was shown (UTC, buckets of {rep.bucket_s:g} s)")
    fig.suptitle(
        f"cinerec online quality per list source (a like counts within {rep.attribution_s:g} s)",
        fontsize=11,
    )
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
