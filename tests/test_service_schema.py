"""Schemathesis over the service's OpenAPI schema, with valid keys: no server error, every answer as documented."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the service needs faceprint[server]")
schemathesis = pytest.importorskip("schemathesis", reason="the schema test needs schemathesis (dev extra)")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.specs.openapi import checks  # noqa: E402

from faceprint.apikeys import KeyStore  # noqa: E402
from faceprint.service.app import create_app  # noqa: E402
from faceprint.service.settings import ServiceSettings  # noqa: E402
from faceprint.tenancy import Tenancy  # noqa: E402

#: Examples per operation: enough to reach every parameter's edges, bounded so the test takes about a minute.
EXAMPLES = 25


def _app_and_key(root: Path) -> tuple[object, str]:
    data = root / "schema-data"
    data.mkdir(parents=True, exist_ok=True)
    _, token = KeyStore(data).create("acme", ["read", "enroll", "recognize", "admin"])
    tenancy = Tenancy(data)
    if not tenancy.exists("acme", "staff"):  # a collection for the generated paths to find
        with tenancy.create("acme", "staff") as gallery:
            gallery.add_person("Someone")
    return create_app(ServiceSettings(data, rate_per_second=1e6, rate_burst=10**6)), token


APP, TOKEN = _app_and_key(Path(__import__("tempfile").mkdtemp(prefix="faceprint-schema-")))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


#: Left out: whether schema-valid input is accepted. An upload's schema is "binary", and random bytes that are
#: not an image are refused (415, 422) as they must be; everything else is checked, server errors first.
NOT_CHECKED = [checks.positive_data_acceptance, checks.negative_data_rejection]


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case: schemathesis.Case) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, excluded_checks=NOT_CHECKED)
