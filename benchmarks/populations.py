"""One table across populations: the simulator's reports (``cinerec simulate --out``, e.g.
written by ``benchmarks/simulate_http.sh``) side by side, the service against the best
reference policy of the same run.

    .venv/bin/python benchmarks/populations.py                  # docs/simulation/*.json
    .venv/bin/python benchmarks/populations.py path/to/reports/ one.json ...

Per report: the service's precision@10, nDCG@10, diversity, coverage, mean ``/recs``
latency and grader points; the reference policy with the best nDCG@10 and that nDCG; and the
service's nDCG@10 divided by it (``cinerec.simulation.report.compare``). Reports without a
``service`` row (references only) show the best reference alone. The oracle policies
(``cinerec.simulation.policies.ORACLE_POLICIES``: they read the hidden answers) are never the
best reference; the last two columns give the best of them and the service's share of it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from cinerec.simulation.policies import ORACLE_POLICIES
from cinerec.simulation.report import compare

ROOT = Path(__file__).resolve().parents[1]
HEAD = [
    "population",
    "users",
    "movies",
    "precision@10",
    "nDCG@10",
    "diversity",
    "coverage",
    "/recs mean ms",
    "grader points",
    "best reference",
    "its nDCG@10",
    "service / best",
    "best oracle",
    "service / oracle",
]


def reports(paths: list[Path]) -> list[Path]:
    """The JSON reports named, folders expanded to their ``*.json``, sorted by name."""
    out: list[Path] = []
    for p in paths:
        out += sorted(p.glob("*.json")) if p.is_dir() else [p]
    return out


def row(doc: dict[str, Any], fallback_name: str) -> list[str]:
    results: list[dict[str, Any]] = doc.get("results", [])
    by = {s["target"]: s for s in results}
    refs = [s for s in results if s["target"] != "service" and s["target"] not in ORACLE_POLICIES]
    oracles = [s for s in results if s["target"] in ORACLE_POLICIES]
    best = max(refs, key=lambda s: s["ndcg@10"]) if refs else None
    oracle = max(oracles, key=lambda s: s["ndcg@10"]) if oracles else None
    name = results[0]["world"] if results else fallback_name
    svc = by.get("service")
    first = svc or (results[0] if results else {})
    cells = [name, str(first.get("users", "-")), str(first.get("movies", "-"))]
    if svc is not None:
        pts = svc["points"]
        cells += [
            f"{svc['precision@10']:.4f}",
            f"{svc['ndcg@10']:.4f}",
            f"{svc['diversity']:.3f}",
            f"{svc['coverage']:.3f}",
            f"{svc['latency_mean_ms']:.1f}",
            f"{pts['total']:.2f} / {len(pts) - 1}",
        ]
    else:
        cells += ["-"] * 6
    if best is not None:
        ratio = compare(results).get(best["target"]) if svc is not None else None
        cells += [
            best["target"],
            f"{best['ndcg@10']:.4f}",
            f"{ratio:.2f}x" if ratio is not None else "-",
        ]
    else:
        cells += ["-"] * 3
    if oracle is not None:
        ratio = compare(results).get(oracle["target"]) if svc is not None else None
        cells += [
            f"{oracle['target']} {oracle['ndcg@10']:.4f}",
            f"{ratio:.2f}x" if ratio is not None else "-",
        ]
    else:
        cells += ["-"] * 2
    return cells


def table(paths: list[Path]) -> str:
    lines = ["| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
    for p in reports(paths):
        doc = json.loads(p.read_text())
        if "results" not in doc:
            continue
        lines.append("| " + " | ".join(row(doc, p.stem)) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "paths",
        nargs="*",
        type=Path,
        default=[ROOT / "docs" / "simulation"],
        help="reports (.json) or folders of them (default: docs/simulation)",
    )
    print(table(ap.parse_args().paths))


if __name__ == "__main__":
    main()
