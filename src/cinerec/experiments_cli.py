"""``cinerec experiments list|create|show|stop|promote``: the experiments API of a running
server, from a shell. The server owns the serving state (which variant each user gets), so
the CLI goes through its admin API rather than writing the store behind its back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from cinerec.config import load_settings

app = typer.Typer(help="A/B experiments of a running server (admin API).", no_args_is_help=True)

PATH = "/api/v1/admin/experiments"

Url = Annotated[str, typer.Option(envvar="CINEREC_URL", help="the server's main port")]
Token = Annotated[
    str | None,
    typer.Option(
        envvar="CINEREC_ADMIN_TOKEN",
        help="admin token (default: the server's generated <data_dir>/admin_token)",
    ),
]
DEFAULT_URL = "http://127.0.0.1:5001"


def _token(token: str | None) -> str | None:
    if token:
        return token
    path = Path(load_settings().data_dir) / "admin_token"
    return path.read_text().strip() if path.exists() else None


def _call(method: str, url: str, token: str | None, path: str, body: Any = None) -> Any:
    """One admin request; a 4xx/5xx exits with the server's ``detail``."""
    tok = _token(token)
    headers = {"Authorization": f"Bearer {tok}"} if tok else {}
    try:
        r = httpx.request(method, url.rstrip("/") + path, json=body, headers=headers, timeout=60)
    except httpx.TransportError as exc:
        raise typer.BadParameter(f"cannot reach {url}: {exc}") from exc
    if r.status_code >= 400:
        try:
            detail = r.json().get("detail", r.text)
        except ValueError:
            detail = r.text
        typer.echo(f"error {r.status_code}: {detail}", err=True)
        raise typer.Exit(1)
    return r.json()


def parse_variant(spec: str) -> dict[str, Any]:
    """``NAME=SHARE[:SOURCE][:noexplore]``, e.g. ``ranker=0.5`` or
    ``pop=0.5:popular:noexplore``.

    >>> parse_variant("pop=0.5:popular:noexplore")
    {'name': 'pop', 'share': 0.5, 'source': 'popular', 'explore': False}
    """
    name, sep, rest = spec.partition("=")
    parts = rest.split(":")
    try:
        share: float | None = float(parts[0])
    except ValueError:
        share = None
    if not sep or not name or share is None:
        raise typer.BadParameter(
            f"variant {spec!r}: write NAME=SHARE[:SOURCE][:noexplore], e.g. pop=0.5:popular"
        )
    flags = parts[1:]
    explore = "noexplore" not in flags
    sources = [f for f in flags if f not in ("noexplore", "explore", "")]
    if len(sources) > 1:
        raise typer.BadParameter(f"variant {spec!r}: one source at most, got {sources}")
    return {
        "name": name,
        "share": share,
        "source": sources[0] if sources else None,
        "explore": explore,
    }


def _print_experiment(e: dict[str, Any]) -> None:
    variants = ", ".join(
        f"{v['name']} {v['share']:g} ({v['source'] or 'ranker'}"
        + ("" if v["explore"] else ", no exploration")
        + ")"
        for v in e["variants"]
    )
    winner = f" winner {e['winner']}" if e.get("winner") else ""
    typer.echo(f"{e['id']}  {e['status']:8s}{winner}  {e['name']}: {variants}")


def _fmt(fig: dict[str, Any] | None) -> str:
    if not fig or fig["value"] is None:
        return "-"
    ci = fig.get("ci95")
    if not ci or ci[0] is None:
        return f"{fig['value']:.4f}"
    return f"{fig['value']:.4f} [{ci[0]:.4f}, {ci[1]:.4f}]"


def report_table(rep: dict[str, Any]) -> str:
    """The report as a Markdown table (what ``show`` prints and docs/observability.md
    quotes), followed by the differences and the verdict."""
    head = (
        "| variant | setting | users | lists | impressions | likes | like rate [95 % CI] "
        "| P@3 [95 % CI] | nDCG@10 [95 % CI] |"
    )
    lines = [head, "|" + "---|" * 9]
    for v in rep["variants"]:
        setting = (v["source"] or "ranker") + ("" if v["explore"] else ", no exploration")
        lines.append(
            f"| {v['name']} | {setting} | {v['users']} | {v['lists']} | {v['impressions']} | "
            f"{v['likes']} | {_fmt(v['like_rate'])} | {_fmt(v['precision_at_3'])} | "
            f"{_fmt(v['ndcg_at_10'])} |"
        )
    for d in rep["differences"]:
        lines.append(
            f"\n{d['variant']} - {d['minus']}: like rate {_fmt(d['like_rate'])}, "
            f"P@3 {_fmt(d['precision_at_3'])}, nDCG@10 {_fmt(d['ndcg_at_10'])}"
        )
    lines.append(f"\nverdict ({rep['verdict']['metric']}): {rep['verdict']['message']}")
    return "\n".join(lines)


@app.command("list")
def list_(url: Url = DEFAULT_URL, token: Token = None) -> None:
    """Every experiment, newest first."""
    for e in _call("GET", url, token, PATH):
        _print_experiment(e)


@app.command()
def create(
    name: Annotated[str, typer.Argument(help="what the experiment compares")],
    variant: Annotated[
        list[str],
        typer.Option(help="NAME=SHARE[:SOURCE][:noexplore]; repeat for each variant"),
    ],
    metric: Annotated[
        str, typer.Option(help="the verdict's figure: like_rate, precision_at_3, ndcg_at_10")
    ] = "like_rate",
    salt: Annotated[str | None, typer.Option(help="the assignment's salt (default random)")] = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Start an experiment (at most one runs at a time)."""
    body: dict[str, Any] = {
        "name": name,
        "variants": [parse_variant(v) for v in variant],
        "metric": metric,
    }
    if salt:
        body["salt"] = salt
    _print_experiment(_call("POST", url, token, PATH, body))


@app.command()
def show(
    experiment_id: str,
    as_json: Annotated[bool, typer.Option("--json", help="the raw report")] = False,
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """The report: per-variant figures with 95 % intervals and the verdict."""
    rep = _call("GET", url, token, f"{PATH}/{experiment_id}")
    if as_json:
        typer.echo(json.dumps(rep, indent=2))
        return
    typer.echo(f"{rep['id']} ({rep['status']}): {rep['name']}")
    typer.echo(report_table(rep))


@app.command()
def stop(experiment_id: str, url: Url = DEFAULT_URL, token: Token = None) -> None:
    """Stop a running experiment: everyone gets the default setting again."""
    _print_experiment(_call("POST", url, token, f"{PATH}/{experiment_id}/stop"))


@app.command()
def promote(
    experiment_id: str,
    variant: Annotated[str, typer.Argument(help="the variant everyone gets from now on")],
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Make a variant's setting what everyone gets (persisted)."""
    body = {"variant": variant}
    _print_experiment(_call("POST", url, token, f"{PATH}/{experiment_id}/promote", body))
