"""Alembic environment. The store passes an open connection in ``config.attributes``;
``alembic -x url=…`` works too for running migrations by hand."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from cinerec.store.tables import metadata

config = context.config
connection = config.attributes.get("connection")


def _run(conn: Connection) -> None:
    context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    _run(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise SystemExit("pass -x url=sqlite:///data/cinerec.db (or a postgresql:// URL)")
    with create_engine(url).begin() as conn:
        _run(conn)
