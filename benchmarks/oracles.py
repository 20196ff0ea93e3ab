"""How far a policy could get on each population: the reference policies and the oracle
policies (which read the population's hidden answers) alone, in process, no pauses, one
table of nDCG@10 (coverage in brackets).

    .venv/bin/python benchmarks/oracles.py                       # the six populations
    .venv/bin/python benchmarks/oracles.py synthetic:skewed ../shared/datasets/ml-1m --seed 1

The last columns put the best oracle beside the best reference: a service's nDCG@10 at
1.2x the best reference is out of reach of anything that learns online where even the
oracles stay below that (docs/simulation.md, *Oracles*). Deterministic for a seed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cinerec.cli import DEFAULT_REFERENCES
from cinerec.simulation import Behaviour, is_synthetic, load_world, simulate, synthetic_world
from cinerec.simulation.policies import ORACLE_POLICIES

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT.parent / "shared" / "datasets"
POPULATIONS = [
    "synthetic:skewed",
    "synthetic:mild",
    "synthetic:holdout",
    str(DATASETS / "ml-100k"),
    str(DATASETS / "ml-1m"),
    str(DATASETS / "ml-latest-small"),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("populations", nargs="*", default=POPULATIONS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--users", type=int, default=1000)
    args = ap.parse_args()
    names = DEFAULT_REFERENCES.split(",")
    head = ["population", *names, "best reference", "best oracle", "oracle / reference"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for spec in args.populations:
        if is_synthetic(spec):
            world = synthetic_world(spec, n_users=args.users, seed=args.seed)
        else:
            world = load_world(spec, n_users=args.users, seed=args.seed, min_relevant=1)
        results, _ = simulate(world, None, names, Behaviour(time_scale=0, seed=args.seed))
        s = {r.target: r.summary() for r in results}
        refs = {n: v["ndcg@10"] for n, v in s.items() if n not in ORACLE_POLICIES}
        oracles = {n: v["ndcg@10"] for n, v in s.items() if n in ORACLE_POLICIES}
        best_ref = max(refs, key=refs.__getitem__)
        best_oracle = max(oracles, key=oracles.__getitem__)
        cells = [world.name]
        cells += [f"{s[n]['ndcg@10']:.4f} ({s[n]['coverage']:.2f})" for n in names]
        cells += [
            f"{best_ref} {refs[best_ref]:.4f}",
            f"{best_oracle} {oracles[best_oracle]:.4f}",
            f"{oracles[best_oracle] / refs[best_ref]:.2f}x",
        ]
        print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
