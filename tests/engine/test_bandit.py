from collections import Counter, defaultdict

import numpy as np

from cinerec.engine.bandit import BATCH, SHOWN_PER_ROW, SourceBandit
from cinerec.engine.state import SourceTally


def tallies(**counts: tuple[int, int]) -> defaultdict[str, SourceTally]:
    t: defaultdict[str, SourceTally] = defaultdict(SourceTally)
    for name, (liked, shown) in counts.items():
        t[name].liked, t[name].shown = liked, shown
    return t


def test_the_source_users_like_wins_most_slots_and_the_other_keeps_a_few() -> None:
    bandit = SourceBandit(tallies(good=(30, 100), weak=(20, 100)), np.random.default_rng(0))
    wins = Counter(bandit.best(["good", "weak"]) for _ in range(2000))
    assert wins["good"] > 1500
    assert wins["weak"] > 50


def test_a_source_without_evidence_draws_from_the_uniform_prior() -> None:
    bandit = SourceBandit(tallies(known=(1, 1000)), np.random.default_rng(1))
    wins = Counter(bandit.best(["known", "new"]) for _ in range(500))
    assert wins["new"] > 450  # Beta(1, 1) beats a source liked once in a thousand


def test_a_young_service_draws_per_list_and_a_busy_one_in_batches() -> None:
    t = tallies(a=(1, 10), b=(2, 10))
    bandit = SourceBandit(t, np.random.default_rng(2))
    bandit.draws(["a", "b"])
    assert len(bandit._rows) == 1
    t["a"].shown = t["b"].shown = BATCH * SHOWN_PER_ROW
    bandit.draws(["a", "b"])
    assert len(bandit._rows) == BATCH


def test_new_evidence_reaches_the_draws_within_one_batch() -> None:
    t = tallies(a=(5000, 10000), b=(5000, 10000))
    bandit = SourceBandit(t, np.random.default_rng(3))
    bandit.draws(["a", "b"])
    rows = len(bandit._rows)
    t["b"].liked = 0  # b turns out to be disliked by everyone
    picks = [bandit.best(["a", "b"]) for _ in range(rows + 200)]
    assert set(picks[rows:]) == {"a"}


def test_a_source_the_batch_lacks_draws_a_new_batch_and_order_is_a_permutation() -> None:
    bandit = SourceBandit(tallies(a=(10, 100)), np.random.default_rng(4))
    bandit.draws(["a"])
    assert bandit.draws(["a", "late"])[1] >= 0.0
    assert "late" in bandit._cols
    order = bandit.order(["late", "a", "c"])
    assert sorted(order) == ["a", "c", "late"]


def test_the_same_seed_gives_the_same_picks() -> None:
    def run() -> list[str]:
        t = tallies(a=(300, 1000), b=(250, 1000), c=(100, 1000))
        bandit = SourceBandit(t, np.random.default_rng(5))
        out = []
        for n in range(300):
            name = bandit.best(["a", "b", "c"])
            t[name].shown += 10
            t[name].liked += n % 3 == 0
            out.append(name)
        return out

    assert run() == run()
