"""Schemathesis against the app's own OpenAPI document, in-process through WSGI, on SQLite and on PostgreSQL+Redis.

Every documented operation gets generated requests, valid and invalid (schemathesis' positive and negative modes),
with and without an agent's bearer token, and against a ticket that exists as well as random ids. Each response
must not be a 5xx, must have a documented status code, content type and headers, must match the documented schema,
and invalid input must be refused with a 4xx: a client written from the document can trust it, and no input makes
the service fall over.

Bounded and reproducible: a few examples per operation and mode, derandomized (the same requests every run, so a
failure here is a failure on every machine), no example database, no shrinking (a failure is reported as found).
The test ids are fixed strings, so xdist workers collect the same tests.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.agents import make_agent
from tests.support.backends import both_backends

# No 5xx; status, content type, headers and body as documented; and invalid input (negative mode) refused with a 4xx.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
# Per operation and generation mode: enough to reach each documented branch, few enough for < 60 s a backend.
MAX_EXAMPLES = 50
BOUNDED = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


def _existing_ticket(app: Flask) -> str:
    response = app.test_client().post("/api/v1/tickets", json={"body": "請求書を再発行してください"})
    assert response.status_code == 202
    return str(response.get_json()["id"])


def _run(operation, mode: GenerationMode, token: str, path_parameters: dict[str, str] | None = None) -> None:  # noqa: ANN001
    """One operation in one mode: generated cases, about half of them with the agent's token."""
    strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)

    @BOUNDED
    @given(case=strategy, with_token=st.booleans())
    def run(case, with_token: bool) -> None:  # noqa: ANN001
        headers = {"Authorization": f"Bearer {token}"} if with_token else None
        case.call_and_validate(headers=headers, checks=CHECKS)

    run()


@both_backends
def test_every_operation_conforms_and_never_answers_5xx(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    token = make_agent(app).token
    ticket_id = _existing_ticket(app)
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, config=SchemathesisConfig())
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 5, [op.label for op in operations]
    runs = [(operation, mode, None) for operation in operations for mode in GenerationMode]
    # Random ids mostly miss; the ticket that exists reaches the 200 answers (public view, full view, actions).
    runs += [(op, GenerationMode.POSITIVE, {"ticket_id": ticket_id}) for op in operations if "{ticket_id}" in op.path]
    for operation, mode, path_parameters in runs:
        try:
            _run(operation, mode, token, path_parameters)
        # Every operation's failures, not only the first one's (schemathesis' FailureGroup is a BaseExceptionGroup).
        except (Exception, FailureGroup) as failure:  # noqa: BLE001
            where = " on the existing ticket" if path_parameters else ""
            failures.append(f"{operation.label} [{mode.value}{where}]: {failure}")
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)
