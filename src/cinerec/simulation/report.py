"""Reports of simulator runs: a table, JSON, and a PNG of the metrics over the run."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from cinerec.simulation.runner import Behaviour, RunResult

BUCKETS = 20
COLUMNS = [
    ("precision@10", "{:.4f}"),
    ("ndcg@10", "{:.4f}"),
    ("diversity", "{:.3f}"),
    ("coverage", "{:.3f}"),
    ("latency_mean_ms", "{:.1f}"),
    ("latency_p99_ms", "{:.1f}"),
    ("errors", "{}"),
]


def over_time(result: RunResult, buckets: int = BUCKETS) -> dict[str, list[float]]:
    """Metrics per slice of the run (slices by answer count, so runs of different wall time
    line up): mean precision, nDCG and latency of the slice, coverage at its end."""
    a = result.answers
    out: dict[str, list[float]] = {
        "progress": [],
        "precision@10": [],
        "ndcg@10": [],
        "coverage": [],
        "latency_ms": [],
    }
    if not a:
        return out
    edges = np.linspace(0, len(a), buckets + 1).astype(int)
    for lo, hi in pairwise(edges):
        part = a[lo:hi]
        if not part:
            continue
        ndcgs = [x.ndcg for x in part if x.ndcg is not None]
        out["progress"].append(hi / len(a))
        out["precision@10"].append(float(np.mean([x.precision for x in part])))
        out["ndcg@10"].append(float(np.mean(ndcgs)) if ndcgs else 0.0)
        out["coverage"].append(part[-1].coverage)
        out["latency_ms"].append(float(np.mean([x.latency_ms for x in part])))
    return out


def table(summaries: Sequence[dict[str, Any]]) -> str:
    """A Markdown table, one row per target, with grader points."""
    head = ["target", *(c for c, _ in COLUMNS), "points"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in summaries:
        cells = [s["target"], *(fmt.format(s[c]) for c, fmt in COLUMNS)]
        pts = s["points"]
        cells.append(f"{pts['total']:.2f} / {len(pts) - 1}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compare(summaries: Sequence[dict[str, Any]], subject: str = "service") -> dict[str, float]:
    """nDCG@10 of ``subject`` divided by each other target's, in the same run."""
    by = {s["target"]: s for s in summaries}
    if subject not in by:
        return {}
    mine = by[subject]["ndcg@10"]
    return {
        name: round(mine / s["ndcg@10"], 3) if s["ndcg@10"] else float("inf")
        for name, s in by.items()
        if name != subject
    }


def write(
    results: Sequence[RunResult],
    behaviour: Behaviour,
    out: Path,
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``<out>.json`` and ``<out>.png``; return the JSON document."""
    out.parent.mkdir(parents=True, exist_ok=True)
    summaries = [r.summary() for r in results]
    series = {r.target: over_time(r) for r in results}
    doc: dict[str, Any] = {
        **(meta or {}),
        "behaviour": asdict(behaviour),
        "results": summaries,
        "ndcg_ratio_vs": compare(summaries),
        "over_time": series,
        "error_samples": {r.target: r.error_samples for r in results if r.error_samples},
    }
    out.with_suffix(".json").write_text(json.dumps(doc, indent=2))
    plot(series, out.with_suffix(".png"), title=str((meta or {}).get("title", "")))
    return doc


def plot(series: dict[str, dict[str, list[float]]], path: Path, title: str = "") -> None:
    """One panel per metric, one line per target (``series``: :func:`over_time` by target)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("precision@10", "precision@10 per answer"),
        ("ndcg@10", "nDCG@10 per answer"),
        ("coverage", "catalogue coverage"),
        ("latency_ms", "/recs latency, ms (service)"),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    for ax, (key, label) in zip(axes.ravel(), panels, strict=True):
        for target, s in series.items():
            if key == "latency_ms" and target != "service":
                continue
            ax.plot([100 * p for p in s["progress"]], s[key], marker=".", label=target)
        ax.set_title(label)
        ax.set_xlabel("share of the run's answers, %")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def experiment_table(result: RunResult) -> str:
    """The simulator's own per-variant figures beside the service's report of the same
    experiment (its values and 95 % intervals), as a Markdown table, then the service's
    verdict. The like rate is compared with the simulator's precision@10 (its users like
    exactly the relevant movies they are shown, and every list has 10)."""
    rep = result.experiment_report
    if rep is None:
        return "no experiment"
    sim = result.by_variant()
    head = (
        "| variant | users (sim / service) | lists (sim / service) | precision@10 sim | "
        "like rate service [95 % CI] | P@3 sim | P@3 service [95 % CI] | nDCG@10 sim | "
        "nDCG@10 service [95 % CI] |"
    )
    lines = [head, "|" + "---|" * 9]

    def fig(f: dict[str, Any]) -> str:
        if f["value"] is None:
            return "-"
        ci = f.get("ci95")
        return f"{f['value']:.4f}" + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "")

    for v in rep["variants"]:
        s = sim.get(v["name"], {"users": 0, "answers": 0})
        lines.append(
            f"| {v['name']} | {s['users']} / {v['users']} | {s['answers']} / {v['lists']} | "
            f"{s.get('precision@10', 0.0):.4f} | {fig(v['like_rate'])} | "
            f"{s.get('precision@3', 0.0):.4f} | {fig(v['precision_at_3'])} | "
            f"{s.get('ndcg@10', 0.0):.4f} | {fig(v['ndcg_at_10'])} |"
        )
    for d in rep["differences"]:
        lines.append(
            f"\nservice: {d['variant']} - {d['minus']}: like rate {fig(d['like_rate'])}, "
            f"P@3 {fig(d['precision_at_3'])}, nDCG@10 {fig(d['ndcg_at_10'])}"
        )
    lines.append(f"\nservice verdict ({rep['verdict']['metric']}): {rep['verdict']['message']}")
    return "\n".join(lines)
