"""Property-based run over the whole OpenAPI schema (schemathesis): valid and invalid requests
to every operation, each sent twice (with the admin token, and anonymously with auth on), must
never produce a server error, and every 2xx answer must match the documented response schema.

A small catalogue with events is loaded first (and again whenever a generated ``/cleanup``
has wiped it), so recommendation, similar-movie and genre code paths run on real data.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis.internal.conjecture.utils import many
from schemathesis import DataGenerationMethod
from schemathesis.checks import not_a_server_error, response_schema_conformance

from cinerec.api.main import create_app
from cinerec.domain import Event, EventKind, Movie
from cinerec.service import RecService

from .conftest import ADMIN, api_settings, genre_of

if not hasattr(many, "more"):  # hypothesis-jsonschema 0.23 (under schemathesis 3.39) calls it
    pytest.fail(
        f"hypothesis {hypothesis.__version__} removed many.more(), which schemathesis 3.39 needs "
        "through hypothesis-jsonschema: install hypothesis<6.170.10",
        pytrace=False,
    )

# FastAPI writes OpenAPI 3.1, which schemathesis 3.x supports behind this switch.
schemathesis.experimental.OPEN_API_3_1.enable()

# A longer, random hunt, on any backend:
#   CINEREC_FUZZ_EXAMPLES=500 CINEREC_FUZZ_DATABASE_URL=postgresql://… pytest <this file>
EXAMPLES = int(os.environ.get("CINEREC_FUZZ_EXAMPLES", "0"))
DATABASE_URL = os.environ.get("CINEREC_FUZZ_DATABASE_URL", "sqlite:///:memory:")

SERVICE = RecService(api_settings(database_url=DATABASE_URL))
SERVICE.cleanup()  # an empty store, whatever the URL
SERVICE.load()  # ready (/readyz)
schema = schemathesis.from_asgi(
    "/openapi.json",
    create_app(SERVICE),
    data_generation_methods=[DataGenerationMethod.positive, DataGenerationMethod.negative],
)


def seed(svc: RecService) -> None:
    svc.add_movies(
        [
            Movie(f"m{i}", f"Movie {i}", 1990 + i, [genre_of(i)], 3.0 + i % 3 * 0.5, 10)
            for i in range(40)
        ]
    )
    svc.record_events(
        [Event(f"u{j}", f"m{i}", EventKind.LIKE) for j in range(5) for i in range(j, 40, 7)]
    )
    svc.set_favorite_genres("u0", ["Drama", "Comedy"])


@pytest.fixture(scope="module", autouse=True)
def _service() -> Iterator[None]:
    yield
    SERVICE.close()


@schema.parametrize()
@settings(
    max_examples=EXAMPLES or 30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    # By default the same examples on every run, so that a failure here is reproducible.
    derandomize=not EXAMPLES,
)
def test_no_server_errors(case: schemathesis.Case) -> None:
    if SERVICE.engine.stats()["movies"] == 0:
        seed(SERVICE)
    for headers in (ADMIN, {}):
        response = case.call(headers=headers)
        checks: tuple = (not_a_server_error,)
        if 200 <= response.status_code < 300:
            checks += (response_schema_conformance,)
        case.validate_response(response, checks=checks)
        assert response.status_code < 500
