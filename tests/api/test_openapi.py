"""The OpenAPI document is generated from the code and describes the three ticket endpoints with their schemas."""

from __future__ import annotations

import pytest


@pytest.fixture
def document(client) -> dict:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    return response.get_json()


def _ref_name(content: dict) -> str:
    return str(content["schema"]["$ref"]).rsplit("/", 1)[-1]


def test_document_lists_the_ticket_endpoints(document: dict) -> None:
    assert document["openapi"].startswith("3.")
    assert {"/api/v1/tickets", "/api/v1/tickets/{ticket_id}"} <= set(document["paths"])
    assert {"get", "post"} <= set(document["paths"]["/api/v1/tickets"])
    assert "get" in document["paths"]["/api/v1/tickets/{ticket_id}"]


def test_create_documents_request_responses_and_idempotency(document: dict) -> None:
    post = document["paths"]["/api/v1/tickets"]["post"]
    request_schema = _ref_name(post["requestBody"]["content"]["application/json"])
    assert "body" in document["components"]["schemas"][request_schema]["required"]
    assert {"202", "200", "400", "413", "415", "422"} <= set(post["responses"])
    assert "Idempotency" in post["responses"]["200"]["description"]
    assert "Location" in post["responses"]["202"]["headers"]
    assert any(p["in"] == "header" and p["name"] == "Idempotency-Key" for p in post["parameters"])


def test_listing_and_reading_document_their_schemas(document: dict) -> None:
    listing = document["paths"]["/api/v1/tickets"]["get"]
    query = {p["name"] for p in listing["parameters"] if p["in"] == "query"}
    assert query == {"route", "status", "limit", "cursor", "q"}
    page_schema = _ref_name(listing["responses"]["200"]["content"]["application/json"])
    assert set(document["components"]["schemas"][page_schema]["properties"]) == {"items", "next_cursor"}
    item = document["paths"]["/api/v1/tickets/{ticket_id}"]["get"]
    assert "404" in item["responses"]
    public, full = (
        _ref_name({"schema": s}) for s in item["responses"]["200"]["content"]["application/json"]["schema"]["oneOf"]
    )
    schemas = document["components"]["schemas"]
    assert set(schemas[public]["properties"]) == {"id", "reference", "status", "route", "created_at"}  # no token
    assert {"route", "confidence", "scores", "status", "body"} <= set(schemas[full]["properties"])  # an agent's


def test_errors_are_documented_as_problem_details(document: dict) -> None:
    error = document["components"]["responses"]["UNPROCESSABLE_ENTITY"]["content"]
    assert set(error) == {"application/problem+json"}
    problem = document["components"]["schemas"][_ref_name(error["application/problem+json"])]
    assert {"type", "title", "status", "detail", "errors"} <= set(problem["properties"])
