"""Schemathesis over the service's OpenAPI schema, with valid keys: no server error, every answer as documented."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the service needs faceprint[server]")
schemathesis = pytest.importorskip("schemathesis", reason="the schema test needs schemathesis (dev extra)")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.specs.openapi import checks  # noqa: E402

from faceprint.apikeys import KeyStore  # noqa: E402
from faceprint.models import EMBEDDING_MODELS  # noqa: E402
from faceprint.service.app import create_app  # noqa: E402
from faceprint.service.settings import ServiceSettings  # noqa: E402
from faceprint.tenancy import Tenancy  # noqa: E402
from faceprint.types import Template  # noqa: E402

#: Examples per operation: enough to reach every parameter's edges, bounded so the test takes about a minute.
EXAMPLES = 25


def _app_and_key(root: Path) -> tuple[object, str]:
    data = root / "schema-data"
    data.mkdir(parents=True, exist_ok=True)
    _, token = KeyStore(data).create("acme", ["read", "enroll", "recognize", "admin"])
    tenancy = Tenancy(data)
    if not tenancy.exists("acme", "staff"):  # a collection for the generated paths to find, with one template
        with tenancy.create("acme", "staff") as gallery:
            vector = np.random.default_rng(0).normal(size=EMBEDDING_MODELS[gallery.model_id].dimension)
            gallery.add_templates(
                "Someone", [Template((vector / np.linalg.norm(vector)).astype(np.float32), gallery.model_id)]
            )
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


def test_an_encrypted_search_manifest_answers_as_documented() -> None:
    """The generated cases above reach an existing collection's manifest only by chance (once in many runs, and
    then its documented schema failed to validate)."""
    pytest.importorskip("tenseal", reason="encrypted identification needs faceprint[private]")
    case = schema["/v1/collections/{collection}/private"]["GET"].Case(path_parameters={"collection": "staff"})
    response = case.call(headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200 and response.json()["labels"] == [[1, "Someone"]]
    case.validate_response(response, excluded_checks=NOT_CHECKED)
