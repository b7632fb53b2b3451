"""The served OpenAPI names every error an operation can be answered with: the edge's own
refusals on every operation, the machinery's 503 on every API operation, a 400 wherever a JSON
body is read, each with the JSON `{"detail": ...}` body the server sends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from browserfleet.api.http_protocol import EDGE_REFUSALS
from browserfleet.app import create_app
from browserfleet.settings import Settings

ERROR_BODY = {"$ref": "#/components/schemas/ErrorBody"}


@pytest.fixture(scope="module")
def operations(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str, dict[str, Any]]]:
    data_dir: Path = tmp_path_factory.mktemp("openapi")
    spec = create_app(Settings(data_dir=data_dir)).openapi()  # no lifespan: nothing starts
    found = [(m, path, op) for path, ops in spec["paths"].items() for m, op in ops.items()]
    assert len(found) >= 38  # the three API mounts and the probes
    return found


def _json_schema(answer: dict[str, Any]) -> object:
    return answer.get("content", {}).get("application/json", {}).get("schema")


def test_the_edge_refusals_are_408_413_431_and_documented_on_every_operation(
    operations: list[tuple[str, str, dict[str, Any]]],
) -> None:
    assert set(EDGE_REFUSALS) == {408, 413, 431}
    for method, path, op in operations:
        for status in EDGE_REFUSALS:
            answer = op["responses"].get(str(status))
            assert answer is not None, f"{method} {path} does not document {status}"
            assert _json_schema(answer) == ERROR_BODY, (method, path, status)


def test_every_api_operation_documents_503_with_retry_after(
    operations: list[tuple[str, str, dict[str, Any]]],
) -> None:
    api = [(m, p, op) for m, p, op in operations if p.startswith("/api/")]
    assert api
    for method, path, op in api:
        answer = op["responses"].get("503")
        assert answer is not None, f"{method} {path} does not document 503"
        assert "Retry-After" in answer.get("headers", {}), (method, path)
        assert _json_schema(answer) == ERROR_BODY, (method, path)


def test_a_400_is_documented_exactly_where_a_body_is_read(
    operations: list[tuple[str, str, dict[str, Any]]],
) -> None:
    with_body = {(m, p) for m, p, op in operations if "requestBody" in op}
    with_400 = {(m, p) for m, p, op in operations if "400" in op["responses"]}
    assert with_body == with_400
    assert ("post", "/api/v3/browsers") in with_body
    assert ("patch", "/api/v3/profiles/{profile_id}") in with_body


def test_the_liveness_probe_documents_no_503(
    operations: list[tuple[str, str, dict[str, Any]]],
) -> None:
    healthz = next(op for m, p, op in operations if p == "/healthz")
    assert "503" not in healthz["responses"]
