"""Synthetic populations, the item-to-item reference with exploration, the CLI on presets and
the table across populations."""

from __future__ import annotations

import importlib.util
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from cinerec.cli import DEFAULT_REFERENCES, app
from cinerec.simulation import (
    PRESETS,
    REFERENCE_POLICIES,
    Behaviour,
    World,
    population_shape,
    simulate,
    synthetic_world,
)
from cinerec.simulation.policies import ItemToItemExplorePolicy

ROOT = Path(__file__).resolve().parents[2]
#: small instances of the presets: a tenth of the catalogue, 60 users in the loop
SMALL: dict[str, Any] = {"eligible_users": 60, "n_users": 60}


def small(preset: str, seed: int = 0, **kw: Any) -> World:
    return synthetic_world(
        preset, seed=seed, **{"items": PRESETS[preset].items // 10, **SMALL, **kw}
    )


def test_population_shape_of_known_counts() -> None:
    counts = np.array([50, 30] + [2] * 98 + [0] * 100)  # 200 movies
    s = population_shape(counts, np.array([1, 2, 3, 10]))
    assert s["top1_share"] == pytest.approx(80 / 276)  # 2 movies = top 1 %
    assert s["top10_share"] == pytest.approx((80 + 18 * 2) / 276)
    assert s["median_ratings_per_user"] == 2.5 and s["unrated_share"] == 0.5
    assert 0 < s["gini"] < 1
    assert population_shape(np.ones(10), np.ones(3))["gini"] == pytest.approx(0.0)


def test_presets_order_by_skew_and_ratings_per_user() -> None:
    """Small instances keep the presets' order: skewed > holdout > mild in popularity skew,
    mild > holdout > skewed in ratings per user.

    Measured on the full presets (seed 0; targets in ../shared/POPULATIONS.md):
    skewed  10,500 movies, 8,000 users, median 2 ratings, top 1 % / 10 % 40.9 % / 74.3 %,
            Gini 0.84 (target 41 % / 74 %, Gini ~0.8, median 2);
    mild    4,000 movies, median 40 ratings, top 10 % 39.4 % (target ~40 %, median ~40);
    holdout 6,000 movies, median 11 ratings, top 1 % / 10 % 25.9 % / 58.4 %.
    """
    shapes = {p: small(p).shape for p in ("skewed", "mild", "holdout")}
    for key in ("top1_share", "top10_share", "gini"):
        assert shapes["skewed"][key] > shapes["holdout"][key] > shapes["mild"][key], key
    med = "median_ratings_per_user"
    assert shapes["mild"][med] > shapes["holdout"][med] > shapes["skewed"][med]
    assert shapes["skewed"][med] == 2.0
    # most users are light: far more were generated than the loop keeps
    assert shapes["skewed"]["users"] >= 5 * SMALL["n_users"]


def test_relevance_rules() -> None:
    # top share: about that share of every user's ratings (rounded up per user)
    half = small("holdout", relevant_share=0.5).shape
    assert 0.5 <= half["relevant_share"] < 0.6
    assert small("holdout", relevant_share=1.0).shape["relevant_share"] == 1.0
    # threshold: ratings follow ML-1M's stars, 57 % of them 4 or 5, 23 % 5
    four = small("mild").shape["relevant_share"]
    five = small("mild", relevant_rating=5).shape["relevant_share"]
    assert four == pytest.approx(0.575, abs=0.05) and five == pytest.approx(0.226, abs=0.05)
    with pytest.raises(ValueError, match="not both"):
        small("mild", relevant_rating=4, relevant_share=0.5)


def test_loop_users_have_min_relevant_movies_and_tastes() -> None:
    w = small("skewed", min_relevant=7)
    assert len(w.users) == SMALL["n_users"]
    assert all(len(u.relevant) >= 7 for u in w.users)
    assert all(u.relevant <= set(w.genres) for u in w.users)
    g = Counter(x for m in w.item_ids for x in w.genres[m])
    assert len(g) <= PRESETS["skewed"].genres
    assert all(1 <= len(w.genres[m]) <= 3 for m in w.item_ids)
    # recent movies (the last 40 %) hold far less than 40 % of the ratings
    assert w.shape["recent_ratings_share"] < 0.25


def test_fresh_ids_and_determinism_by_seed() -> None:
    a, b, c = small("holdout"), small("holdout"), small("holdout", seed=1)
    assert not set(a.item_ids) & set(b.item_ids)  # new ids on every run

    def strip(w: World) -> list[frozenset[str]]:
        return [frozenset(m.split("-", 1)[1] for m in u.relevant) for u in w.users]

    assert strip(a) == strip(b) and a.shape == b.shape
    assert strip(a) != strip(c)
    assert a.name == "synthetic-holdout" and a.params["preset"] == "holdout"
    with pytest.raises(ValueError, match="unknown synthetic population"):
        synthetic_world("synthetic:nope")


def _neighbours_over_popularity(w: World, k: int = 20) -> float:
    """Hits@k on half of each user's relevant movies, from the other half: ranking by the
    relevant movies of users who share that half (user k-NN) over ranking by popularity."""
    idx = {m: i for i, m in enumerate(w.item_ids)}
    r = np.zeros((len(w.users), len(idx)))
    for row, u in enumerate(w.users):
        r[row, [idx[m] for m in u.relevant]] = 1
    rng = np.random.default_rng(0)
    hits = np.zeros(2)
    for row in range(len(w.users)):
        rel = rng.permutation(np.flatnonzero(r[row]))
        known, hidden = rel[: len(rel) // 2], rel[len(rel) // 2 :]
        others = np.delete(r, row, axis=0)
        pop = others.sum(axis=0)
        knn = others[:, known].sum(axis=1) @ others + 1e-3 * pop
        for j, s in enumerate((pop, knn)):
            s[known] = -1
            hits[j] += np.isin(np.argsort(-s)[:k], hidden).sum()
    return float(hits[1] / hits[0])


def test_co_liking_structure_beyond_popularity() -> None:
    """Users who like A tend to like B beyond B's popularity: similar users predict a user's
    hidden relevant movies better than popularity does, and only because of the tastes
    (MovieLens, 200 users: 1.1-1.2x)."""
    kw: dict[str, Any] = {"items": 400, "eligible_users": 300, "n_users": 300}
    with_tastes = _neighbours_over_popularity(synthetic_world("mild", **kw))
    without = _neighbours_over_popularity(
        synthetic_world("mild", taste=0.0, affinity_weight=0.0, **kw)
    )
    assert with_tastes > 1.08 and with_tastes > without + 0.05, (with_tastes, without)


# -- the item-to-item reference with exploration ---------------------------------------------
def test_item_to_item_explore_gives_two_slots_to_the_least_shown() -> None:
    w = small("mild", items=400)
    policy = ItemToItemExplorePolicy(seed=1)
    policy.reset(w)
    liked = w.item_ids[:12]
    for v in range(4):  # other users like 12 movies: the first 8 slots have candidates
        policy.interact(f"v{v}", liked, ["like"] * 12)
    for v in range(5):
        policy.recs(f"w{v}", 10)
    before = policy.shown.copy()
    recs = policy.recs("new", 10)
    assert len(recs) == len(set(recs)) == 10
    assert set(recs[:8]) <= set(liked)  # no likes of its own: the most liked
    idx = [policy.index[m] for m in recs[8:]]
    free = np.ones(len(before), bool)
    free[[policy.index[m] for m in recs[:8]]] = False
    assert all(before[i] == before[free].min() for i in idx)
    # never re-shows: the user's next lists are all new
    later = [m for _ in range(5) for m in policy.recs("new", 10)]
    assert not set(later) & set(recs) and len(later) == len(set(later)) == 50


def test_item_to_item_explore_covers_the_catalogue() -> None:
    w = small("holdout")
    [res] = simulate(w, None, ["item_to_item_explore"], Behaviour(requests=8, time_scale=0))[0]
    # 60 users x 8 answers x 2 exploration slots = 960 of the 600 movies: all of them
    assert res.summary()["coverage"] == 1.0 and res.errors == 0


def test_default_references_carry_the_populations_md_set() -> None:
    refs = DEFAULT_REFERENCES.split(",")
    assert {"random", "most_popular", "course_baseline", "cooccurrence"} <= set(refs)
    assert "item_to_item_explore" in refs and set(refs) <= set(REFERENCE_POLICIES)


# -- the CLI and the table -----------------------------------------------------------------
def test_cli_simulates_a_preset_with_flags(tmp_path: Path) -> None:
    out = tmp_path / "r"
    args = ["simulate", "synthetic:skewed", "--items", "500", "--genres", "6", "--users", "8"]
    args += ["--requests", "2", "--time-scale", "0", "--references", "most_liked"]
    args += ["--database-url", f"sqlite:///{tmp_path / 'sim.db'}", "--out", str(out)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    doc = json.loads(out.with_suffix(".json").read_text())
    assert doc["population"]["items"] == 500 and doc["population"]["preset"] == "skewed"
    assert doc["shape"]["movies"] == 500
    [svc, ref] = doc["results"]
    assert svc["world"] == "synthetic-skewed" and svc["movies"] == 500
    assert svc["errors"] == 0 and svc["answers"] == 16
    assert ref["target"] == "most_liked" and ref["answers"] == 16


def test_cli_rejects_unknown_presets_and_synthetic_flags_on_folders() -> None:
    r = CliRunner().invoke(app, ["simulate", "synthetic:nope", "--users", "5"])
    assert r.exit_code != 0 and "synthetic:skewed" in r.output
    demo = ROOT / "src" / "cinerec" / "demo_data" / "ml-latest-small"
    r = CliRunner().invoke(app, ["simulate", str(demo), "--zipf", "1.0"])
    assert r.exit_code != 0 and "--zipf" in r.output


def test_populations_table(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("populations", ROOT / "benchmarks/populations.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    w = small("holdout")
    results, _ = simulate(
        w, None, ["random", "most_liked", "oracle_popular"], Behaviour(time_scale=0)
    )
    doc = {"results": [r.summary() for r in results]}
    # pretend most_liked is the service: the table compares it with the best other reference
    for s in doc["results"]:
        s["target"] = "service" if s["target"] == "most_liked" else s["target"]
    (tmp_path / "h.json").write_text(json.dumps(doc))
    (tmp_path / "not-a-report.json").write_text("{}")
    table = mod.table([tmp_path])
    assert len(table.splitlines()) == 3
    row = table.splitlines()[2].strip("| ").split(" | ")
    # an oracle is never the best reference: it has its own columns
    assert row[0] == "synthetic-holdout" and row[9] == "random"
    assert row[11].endswith("x") and float(row[11][:-1]) > 1
    assert row[12].startswith("oracle_popular ") and row[13].endswith("x")


def test_oracles_table_puts_the_best_oracle_beside_the_best_reference(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = importlib.util.spec_from_file_location("oracles", ROOT / "benchmarks/oracles.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    demo = ROOT / "src" / "cinerec" / "demo_data" / "ml-latest-small"
    monkeypatch.setattr("sys.argv", ["oracles.py", str(demo), "--users", "40"])
    mod.main()
    head, _, row = capsys.readouterr().out.strip().splitlines()
    cells = row.strip("| ").split(" | ")
    assert head.split(" | ")[-3:] == ["best reference", "best oracle", "oracle / reference |"]
    assert cells[0] == "ml-latest-small" and not cells[-3].startswith("oracle_")
    assert cells[-2].startswith("oracle_") and float(cells[-1][:-1]) > 1
