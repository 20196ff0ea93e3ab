"""Reasons a person can read: why a movie is in their list ("because you liked Heat").

A reason is built from the evidence that put the movie there, after the list is made and for
its movies only (a list holds 10 movies; a plan holds 200 candidates): the source that ranks
the movie best says which kind of evidence, and that source names it —

- item-to-item, co-likes and the personal models: the user's liked movies behind the score
  (:meth:`cinerec.engine.recommenders.Recommender.explain`);
- the genre sources and "newest": the user's genre (favourite, else from their likes) that
  the movie belongs to;
- popularity, like rate and top rated: what they measure;
- exploration: "something different".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

#: how many liked movies a reason names
MAX_BECAUSE = 2


@dataclass(frozen=True, slots=True)
class Reason:
    #: liked | taste | genre_top | genre_popular | new | popular | like_rate | top_rated |
    #: explore | other
    kind: str
    #: the sentence shown under the movie
    text: str
    #: the user's liked movies behind it (external ids), strongest first
    because: list[str] = field(default_factory=list)
    genre: str | None = None


def _titles(titles: Sequence[str]) -> str:
    if len(titles) == 1:
        return titles[0]
    return ", ".join(titles[:-1]) + " and " + titles[-1]


def liked_reason(ids: Sequence[str], titles: Sequence[str]) -> Reason:
    return Reason("liked", f"Because you liked {_titles(titles)}", list(ids))


def genre_reason(kind: str, genre: str | None) -> Reason:
    """The reason of a genre-led pick; without a genre, the plain kind's."""
    if genre is None:
        return plain_reason("new" if kind == "new" else "taste")
    text = {
        "genre_top": f"Top rated in {genre}, a genre you like",
        "genre_popular": f"Popular with people who like {genre}",
        "new": f"New in {genre}",
    }[kind]
    return Reason(kind, text, genre=genre)


_PLAIN = {
    "popular": "Popular right now",
    "like_rate": "Most people who saw it liked it",
    "top_rated": "Top rated",
    "new": "New",
    "explore": "Something different",
    "taste": "Close to what you like",
    "other": "Recommended for you",
}


def plain_reason(kind: str) -> Reason:
    return Reason(kind, _PLAIN[kind])
