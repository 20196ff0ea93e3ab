"""Command line: ``cinerec --help`` lists every command."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cinerec.config import Settings, load_settings
from cinerec.experiments_cli import app as experiments_app

if TYPE_CHECKING:
    from cinerec.service import RecService

app = typer.Typer(
    help="cinerec: a self-hosted movie recommendation service.",
    no_args_is_help=True,
    add_completion=False,
)
import_app = typer.Typer(help="Import rating data sets into the store.", no_args_is_help=True)
app.add_typer(import_app, name="import")
app.add_typer(experiments_app, name="experiments")


#: idle keep-alive connections live this long (uvicorn's 5 s default raced clients that pause
#: a few seconds between requests: the reused connection was closed under them)
KEEP_ALIVE_S = 75

#: reference policies every ``cinerec simulate`` run carries unless told otherwise
DEFAULT_REFERENCES = (
    "random,most_popular,most_liked,course_baseline,cooccurrence,item_to_item_explore,"
    "genre_liked,oracle_popular,oracle_popular_genres,oracle_user_knn"
)


def _settings(database_url: str | None) -> Settings:
    """Settings from the environment, with ``--database-url`` winning when given."""
    return load_settings(**({"database_url": database_url} if database_url else {}))


def _logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


#: printed when a server runs without authentication (``make run``'s local demo)
NO_AUTH_WARNING = """
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!! cinerec runs WITHOUT AUTHENTICATION (CINEREC_AUTH=off): anyone who reaches this port  !!
!! may read and write every user's data, train, hide movies and wipe everything.        !!
!! Local demo only. For anything else see docs/security.md.                             !!
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
"""


@app.command()
def serve(
    host: Annotated[
        str, typer.Option(help="address to bind; loopback unless you mean to expose it")
    ] = "127.0.0.1",
    port: int = 5001,
    collector_port: Annotated[int | None, typer.Option(help="also serve /interact here")] = None,
    demo: Annotated[
        bool, typer.Option(help="load MovieLens latest-small when the store is empty")
    ] = False,
    auth: Annotated[
        bool | None,
        typer.Option("--auth/--no-auth", help="bearer tokens required (default: CINEREC_AUTH)"),
    ] = None,
    contract_a: Annotated[
        bool | None,
        typer.Option(
            "--contract-a/--no-contract-a",
            help="mount the grader's open endpoints (default: CINEREC_CONTRACT_A)",
        ),
    ] = None,
    database_url: Annotated[str | None, typer.Option(envvar="CINEREC_DATABASE_URL")] = None,
) -> None:
    """Run the service (API, collector, in-process cache) in one process."""
    from cinerec.api.main import build_service, create_app, create_collector_app

    overrides: dict[str, object] = {}
    if demo:
        overrides["demo_data"] = True
    if database_url:
        overrides["database_url"] = database_url
    if auth is not None:
        overrides["auth"] = auth
    if contract_a is not None:
        overrides["contract_a"] = contract_a
    settings = load_settings(**overrides)
    _logging(settings.log_level)
    if not settings.auth:
        logging.getLogger("cinerec").warning(NO_AUTH_WARNING)
    if settings.contract_a and host not in ("127.0.0.1", "localhost", "::1"):
        logging.getLogger("cinerec").warning(
            "contract A is on and bound to %s: /cleanup (wipes everything) and the other "
            "grader endpoints are open to anyone who reaches it (CINEREC_CONTRACT_A=off for "
            "production)",
            host,
        )
    if collector_port is not None and not settings.contract_a:
        typer.echo("contract A is off: no collector port (/interact is not mounted)")
        collector_port = None
    svc = build_service(settings)
    _settle_heap(svc)
    typer.echo(f"cinerec: {svc.engine.stats()} on {settings.database_url}")
    if settings.scheduler:
        import sys

        from cinerec.training import Scheduler

        # Training shares the process: hand the GIL back to request handling every 1 ms
        # (default 5 ms) while its pure-Python parts run.
        sys.setswitchinterval(0.001)

        Scheduler(svc.trainer, housekeeping=svc.housekeeping).start()
    main_app = create_app(svc, owns_service=True)
    apps = [(main_app, port)]
    if collector_port is not None:
        apps.append((create_collector_app(svc), collector_port))
    typer.echo(
        f"serving http://{host}:{port} (docs at /docs)"
        + (f", collector http://{host}:{collector_port}/interact" if collector_port else "")
    )
    _run_servers(host, apps)


def _settle_heap(svc: RecService) -> None:
    """Keep the garbage collector's full passes short in a long-running process: what is
    alive is moved out of its sight every few seconds, and everything is collected after
    each training run (the state it replaced is freed) and every ten minutes
    (:mod:`cinerec.heap`)."""
    from cinerec.heap import HeapSettler

    settler = HeapSettler().start()
    svc.trainer.listeners.append(settler.full)
    svc.on_close(settler.close)


def _run_servers(host: str, apps: list[tuple[Any, int]]) -> None:
    """Serve each (app, port) with uvicorn in this process until stopped."""
    import uvicorn

    token_path = apps[0][0].state.auth.admin_token_path
    if token_path is not None:
        typer.echo(f"admin token: in {token_path.resolve()} (owner-only; CINEREC_ADMIN_TOKEN)")
    servers = [
        uvicorn.Server(
            uvicorn.Config(
                app,
                host=host,
                port=port,
                log_level="warning",
                access_log=False,
                timeout_keep_alive=KEEP_ALIVE_S,
                # the app reads X-Forwarded-For itself (settings.trusted_proxies)
                proxy_headers=False,
            )
        )
        for app, port in apps
    ]

    async def run_all() -> None:
        await asyncio.gather(*(s.serve() for s in servers))

    # The loop uvicorn itself would run (uvloop where installed, as `uvicorn app:app` does):
    # the standard library's pure-Python loop costs several times as much per request.
    with asyncio.Runner(loop_factory=servers[0].config.get_loop_factory()) as runner:
        runner.run(run_all())


def _role_settings(host: str, database_url: str | None) -> Settings:
    """Settings of a role of the topology, with the same warnings as ``serve``."""
    settings = _settings(database_url)
    _logging(settings.log_level)
    if not settings.auth:
        logging.getLogger("cinerec").warning(NO_AUTH_WARNING)
    if settings.contract_a and host not in ("127.0.0.1", "localhost", "::1"):
        logging.getLogger("cinerec").warning(
            "contract A is on and bound to %s: its open endpoints (/cleanup wipes everything) "
            "are reachable by anyone who reaches it (CINEREC_CONTRACT_A=off for production)",
            host,
        )
    return settings


@app.command()
def api(
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    port: int = 5001,
    database_url: Annotated[str | None, typer.Option(envvar="CINEREC_DATABASE_URL")] = None,
) -> None:
    """The API role of the topology: serves lists (from the plans the worker keeps in Redis
    when CINEREC_CACHE_URL is redis://), the catalogue and contract B; run several replicas.
    Events sent here go through the bus like the collector's (docs/deployment.md)."""
    from cinerec.api.main import create_app
    from cinerec.service import RecService
    from cinerec.topology import Follower

    settings = _role_settings(host, database_url)
    svc = RecService(settings, role="api")
    svc.load()
    _settle_heap(svc)
    Follower(svc).start()
    typer.echo(f"cinerec api: {svc.engine.stats()} on {settings.database_url}")
    typer.echo(f"serving http://{host}:{port} (docs at /docs)")
    _run_servers(host, [(create_app(svc, owns_service=True), port)])


@app.command()
def collector(
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    port: int = 5000,
    database_url: Annotated[str | None, typer.Option(envvar="CINEREC_DATABASE_URL")] = None,
) -> None:
    """The collector role of the topology: /interact and /api/v1/events[/batch] publish to
    the bus (CINEREC_BROKER_URL=amqp://…) and answer 200 once the broker confirmed; it keeps
    no serving state."""
    from cinerec.api.main import create_collector_app
    from cinerec.service import RecService

    settings = _role_settings(host, database_url)
    svc = RecService(settings, role="collector")
    svc.loaded = True  # nothing to load: it only forwards events
    typer.echo(f"cinerec collector: events to {settings.broker_url.split('@')[-1]}")
    typer.echo(f"serving http://{host}:{port}")
    _run_servers(host, [(create_collector_app(svc, owns_service=True), port)])


@app.command()
def migrate(
    database_url: Annotated[str | None, typer.Option(envvar="CINEREC_DATABASE_URL")] = None,
) -> None:
    """Create or upgrade the database schema (Alembic migrations)."""
    from cinerec.store import open_store

    settings = _settings(database_url)
    open_store(settings.database_url).close()
    typer.echo(f"schema up to date on {settings.database_url}")


@import_app.command("movielens")
def import_movielens(
    path: Annotated[Path, typer.Argument(help="folder of MovieLens 100K, 1M or latest(-small)")],
    limit: Annotated[int | None, typer.Option(help="import only the first N ratings")] = None,
    database_url: Annotated[str | None, typer.Option(envvar="CINEREC_DATABASE_URL")] = None,
) -> None:
    """Import MovieLens movies (title, year, genres) and ratings (as rating events)."""
    from cinerec.ingest import import_movielens as run
    from cinerec.store import open_store

    settings = _settings(database_url)
    try:
        report = run(open_store(settings.database_url), path, limit=limit)
    except (ValueError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(
        f"imported {report.movies} movies, {report.events} ratings of {report.users} users "
        f"in {report.seconds:.1f} s ({report.rows_per_second:,.0f} rows/s)"
    )


@app.command()
def generate(
    movies: int = 10_000,
    users: int = 10_000,
    events: int = 1_000_000,
    seed: int = 0,
    database_url: Annotated[str | None, typer.Option(envvar="CINEREC_DATABASE_URL")] = None,
) -> None:
    """Make a synthetic catalogue and users with latent genre tastes (for scale tests)."""
    from cinerec.ingest import generate as run
    from cinerec.store import open_store

    settings = _settings(database_url)
    report = run(open_store(settings.database_url), movies, users, events, seed=seed)
    typer.echo(
        f"generated {report.movies} movies, {report.users} users, {report.events} events "
        f"in {report.seconds:.1f} s ({report.rows_per_second:,.0f} rows/s)"
    )


@app.command()
def recommend(
    user_id: str,
    k: int = 10,
    database_url: Annotated[str | None, typer.Option(envvar="CINEREC_DATABASE_URL")] = None,
) -> None:
    """Print recommendations for one user straight from the store (no server needed)."""
    from cinerec.service import RecService

    settings = _settings(database_url)
    svc = RecService(settings)
    svc.load()
    result = svc.recommend(user_id, k)
    cat = svc.engine.catalog
    for it in result.items:
        idx = cat.ids.get(it.movie_id)
        title = cat.titles[idx] if idx is not None else ""
        typer.echo(json.dumps({"movie_id": it.movie_id, "title": title, "source": it.source}))
    svc.close()


def _loaded_service(database_url: str | None, role: str = "serve") -> RecService:
    from cinerec.service import RecService

    settings = _settings(database_url)
    _logging(settings.log_level)
    svc = RecService(settings, role=role)
    svc.load(progress=True)
    return svc


@app.command()
def train(
    full: Annotated[bool, typer.Option("--full/--incremental", help="full refit or update")] = True,
    database_url: Annotated[str | None, typer.Option(envvar="CINEREC_DATABASE_URL")] = None,
) -> None:
    """Train personal models from the stored events; promote those not worse than serving."""
    svc = _loaded_service(database_url)
    rep = svc.trainer.train("full" if full else "incremental")
    if rep.skipped:
        typer.echo(f"skipped: {rep.skipped}")
    for r in rep.trained:
        typer.echo(f"{r.version:40s} {r.status:9s} fit {r.train_seconds:7.2f}s  {r.metrics}")
    svc.close()


@app.command()
def worker(
    database_url: Annotated[str | None, typer.Option(envvar="CINEREC_DATABASE_URL")] = None,
    tick: float = 5.0,
    cycles: Annotated[int | None, typer.Option(help="stop after N checks (default: never)")] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="serve this role's Prometheus /metrics on this port")
    ] = None,
    metrics_host: str = "127.0.0.1",
) -> None:
    """The worker role: stores the events the bus delivers (CINEREC_BROKER_URL=amqp://…),
    keeps the users' plans in Redis and trains on the schedule. Without a broker it only
    trains on the schedule, reading new events from the database (servers pick new models
    up)."""
    import time

    svc = _loaded_service(database_url, role="worker")
    _settle_heap(svc)
    if metrics_port is not None:
        from prometheus_client import start_http_server

        from cinerec.observability.metrics import worker_metrics

        start_http_server(metrics_port, metrics_host, registry=worker_metrics(svc).registry)
        typer.echo(f"worker: metrics at http://{metrics_host}:{metrics_port}/metrics")
    if not svc.settings.broker_url.startswith("memory"):
        _consume(svc)
        return
    last_id = svc.store.last_event_id()
    typer.echo("worker: training on schedule; Ctrl-C to stop")
    n = 0
    while cycles is None or n < cycles:
        n += 1
        # New events arrive through other processes: fold them in before asking the schedule.
        batch = [e for _, e in svc.store.iter_events(after_id=last_id)]
        if batch:
            last_id = svc.store.last_event_id()
            svc.engine.apply_events(batch)
        mode = svc.trainer.due()
        if mode:
            rep = svc.trainer.train(mode)
            typer.echo(f"{mode}: {[(r.version, r.status) for r in rep.trained]}")
        time.sleep(tick)


def _consume(svc: RecService) -> None:
    """The worker of the topology: consume the bus until stopped, keep plans, train."""
    import threading

    from cinerec.topology import Worker
    from cinerec.training import Scheduler

    work = Worker(svc)
    if svc.shared is not None:
        threading.Thread(target=work.run_ticker, name="worker-ticker", daemon=True).start()
    if svc.settings.scheduler:
        Scheduler(svc.trainer, housekeeping=svc.housekeeping).start()
    typer.echo(f"worker: consuming {svc.settings.broker_queue}; Ctrl-C to stop")
    try:
        svc.bus.consume(work.handle, work.stop)
    except KeyboardInterrupt:
        work.stop.set()
    svc.close()


@app.command()
def report(
    window: Annotated[
        float | None, typer.Option(help="seconds of lists to cover (default: online_window_s)")
    ] = None,
    attribution: Annotated[
        float | None,
        typer.Option(help="a like counts for a list within this many seconds after it"),
    ] = None,
    bucket: Annotated[
        float | None, typer.Option(help="seconds per point of the chart (default: window / 24)")
    ] = None,
    png: Annotated[Path, typer.Option(help="where to draw the chart")] = Path("online_quality.png"),
    json_out: Annotated[Path | None, typer.Option("--json", help="also write JSON here")] = None,
    database_url: Annotated[str | None, typer.Option(envvar="CINEREC_DATABASE_URL")] = None,
) -> None:
    """Online Precision/Recall@3 and @10 per list source, from the recommendation log and the
    likes that followed (docs/observability.md): a table, and a PNG over time."""
    import time

    from cinerec.observability import report as rep_mod
    from cinerec.observability.online import KS, load_scores
    from cinerec.store import open_store

    settings = _settings(database_url)
    window_s = window or settings.online_window_s
    attribution_s = attribution or settings.online_attribution_s
    bucket_s = bucket or window_s / 24
    for name, v in (
        ("--window", window_s),
        ("--attribution", attribution_s),
        ("--bucket", bucket_s),
    ):
        if v <= 0:
            raise typer.BadParameter(f"{name} must be positive, got {v:g}")
    store = open_store(settings.database_url)
    until = time.time()
    scores = load_scores(
        store, until - window_s, ks=KS, attribution_s=attribution_s, weights=settings.weights
    )
    store.close()
    rep = rep_mod.build(
        scores,
        since=until - window_s,
        until=until,
        ks=KS,
        attribution_s=attribution_s,
        bucket_s=bucket_s,
    )
    typer.echo(rep_mod.table(rep))
    rep_mod.plot(rep, png)
    typer.echo(f"chart: {png}")
    if json_out is not None:
        rep_mod.write_json(rep, json_out)
        typer.echo(f"json: {json_out}")


@app.command()
def evaluate(
    dataset: Annotated[Path, typer.Argument(help="MovieLens folder (100K, 1M, latest)")],
    models: Annotated[str, typer.Option(help="comma-separated model kinds")] = "popular,als,ease",
    splitter: Annotated[str, typer.Option(help="stratified | time | strong")] = "stratified",
    k: int = 10,
    out: Annotated[Path, typer.Option(help="folder for JSON and PNG")] = Path("data/evaluation"),
) -> None:
    """Offline evaluation: split, fit, and report ranking metrics as table, JSON and PNG."""
    from cinerec.evaluation.harness import evaluate_cli

    evaluate_cli(dataset, [m.strip() for m in models.split(",") if m.strip()], splitter, k, out)


@app.command()
def simulate(
    dataset: Annotated[
        str,
        typer.Argument(
            help="MovieLens folder (100K, 1M, latest), or a synthetic population: "
            "synthetic:skewed, synthetic:mild, synthetic:holdout"
        ),
    ],
    url: Annotated[
        str | None, typer.Option(help="service base URL (contract A); default: in process")
    ] = None,
    collector_url: Annotated[str | None, typer.Option(help="where /interact goes")] = None,
    users: Annotated[int, typer.Option(help="simulated users drawn from the data set")] = 1000,
    requests: Annotated[int, typer.Option(help="/recs requests per user")] = 8,
    concurrency: Annotated[int, typer.Option(help="users active at once")] = 50,
    time_scale: Annotated[float, typer.Option(help="multiplies every pause")] = 1.0,
    p_self: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="after each answer, the chance that the user likes a relevant movie it "
            "found by itself (0: users only react to what they are shown)",
        ),
    ] = 0.3,
    references: Annotated[
        str, typer.Option(help="comma-separated reference policies, or 'none'")
    ] = DEFAULT_REFERENCES,
    seed: int = 0,
    out: Annotated[Path | None, typer.Option(help="report path without suffix")] = None,
    database_url: Annotated[
        str | None, typer.Option(help="store of the in-process service (default: temp SQLite)")
    ] = None,
    min_relevant: Annotated[
        int | None,
        typer.Option(help="users need this many relevant movies (default 5 synthetic, 1 folder)"),
    ] = None,
    items: Annotated[int | None, typer.Option(help="synthetic: catalogue size")] = None,
    zipf: Annotated[
        float | None, typer.Option(help="synthetic: popularity skew (Zipf exponent)")
    ] = None,
    ratings_per_user: Annotated[
        float | None, typer.Option(help="synthetic: median ratings per user (log-normal)")
    ] = None,
    genres: Annotated[int | None, typer.Option(help="synthetic: number of genres")] = None,
    relevant_share: Annotated[
        float | None, typer.Option(help="synthetic: relevant = this top share of each user")
    ] = None,
    relevant_rating: Annotated[
        float | None, typer.Option(help="synthetic: relevant = at least this many stars of 5")
    ] = None,
    recent_share: Annotated[
        float | None, typer.Option(help="synthetic: share of recent movies (little history)")
    ] = None,
    variant: Annotated[
        list[str] | None,
        typer.Option(
            help="run an A/B experiment in the service: NAME=SHARE[:SOURCE][:noexplore], "
            "once per variant (cinerec experiments create)"
        ),
    ] = None,
    experiment_metric: Annotated[str, typer.Option(help="the verdict's figure")] = "like_rate",
    experiment_salt: Annotated[str | None, typer.Option(help="the assignment's salt")] = None,
    admin_token: Annotated[
        str | None,
        typer.Option(envvar="CINEREC_ADMIN_TOKEN", help="to start the experiment over HTTP"),
    ] = None,
) -> None:
    """Replay a rating data set, or a synthetic population, as live users against the service
    and reference policies."""
    import time

    from cinerec.simulation import (
        REFERENCE_POLICIES,
        Behaviour,
        HttpTarget,
        ServiceTarget,
        compare,
        in_process_service,
        is_synthetic,
        load_world,
        synthetic_world,
        table,
    )
    from cinerec.simulation import simulate as run_simulation
    from cinerec.simulation.report import experiment_table

    refs = [] if references == "none" else [r.strip() for r in references.split(",") if r]
    unknown = [r for r in refs if r not in REFERENCE_POLICIES]
    if unknown:
        raise typer.BadParameter(
            f"unknown reference policies {unknown}; choose from {sorted(REFERENCE_POLICIES)}"
        )
    flags: dict[str, Any] = {
        "items": items,
        "zipf": zipf,
        "ratings_per_user": ratings_per_user,
        "genres": genres,
        "relevant_share": relevant_share,
        "relevant_rating": relevant_rating,
        "recent_share": recent_share,
    }
    try:
        if is_synthetic(dataset):
            world = synthetic_world(
                dataset,
                n_users=users,
                min_relevant=5 if min_relevant is None else min_relevant,
                seed=seed,
                **flags,
            )
        else:
            given = sorted(f"--{k.replace('_', '-')}" for k, v in flags.items() if v is not None)
            if given:
                raise ValueError(f"{', '.join(given)}: only for synthetic:<preset> populations")
            world = load_world(dataset, n_users=users, seed=seed, min_relevant=min_relevant or 1)
    except (ValueError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    b = Behaviour(
        requests=requests, concurrency=concurrency, time_scale=time_scale, seed=seed, p_self=p_self
    )
    svc = None
    target: HttpTarget | ServiceTarget
    experiment = None
    if variant:
        from cinerec.experiments_cli import parse_variant

        experiment = {
            "name": f"simulate {dataset}",
            "variants": [parse_variant(v) for v in variant],
            "metric": experiment_metric,
            **({"salt": experiment_salt} if experiment_salt else {}),
        }
    if url:
        target = HttpTarget(url, collector_url, admin_token=admin_token)
    else:
        svc = in_process_service(database_url)
        target = ServiceTarget(svc)
    out = out or Path("data/simulation") / world.name
    meta = {
        "title": f"{world.name}: {len(world.users)} users, {world.n_items} movies, "
        f"{concurrency} at once",
        "dataset": str(dataset),
        "target": url or "in process",
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "shape": {k: round(v, 4) for k, v in world.shape.items()},
        **({"population": world.params} if world.params else {}),
    }
    typer.echo(
        f"{world.name}: {len(world.users)} users, {world.n_items} movies; population "
        + ", ".join(f"{k} {v:.3g}" for k, v in world.shape.items())
    )
    results, _ = run_simulation(world, target, refs, b, out, meta, experiment)
    if svc is not None:
        svc.close()
    summaries = [r.summary() for r in results]
    typer.echo(table(summaries))
    typer.echo(f"nDCG@10 of the service / reference: {compare(summaries)}")
    typer.echo(f"report: {out.with_suffix('.json')} and {out.with_suffix('.png')}")
    if experiment is not None:
        ran = results[0]
        typer.echo("\nexperiment: the simulator's own figures per variant beside the service's")
        typer.echo(experiment_table(ran))
        path = out.with_suffix(".experiment.json")
        doc = {
            "experiment": ran.experiment,
            "simulator": ran.by_variant(),
            "service": ran.experiment_report,
        }
        path.write_text(json.dumps(doc, indent=2))
        typer.echo(f"experiment: {path}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
