"""flask-smorest, adapted so its errors are problem details and its document says so."""

from __future__ import annotations

import http
from typing import Any

from flask_smorest import Api, Blueprint
from flask_smorest.utils import prepare_response, resolve_schema_instance

from api.parsing import ProblemParser
from api.problems import PROBLEM_MIMETYPE, ProblemSchema

OPENAPI_CONFIG: dict[str, Any] = {
    "API_TITLE": "furiwake",
    "API_VERSION": "v1",
    "OPENAPI_VERSION": "3.0.3",
    "OPENAPI_URL_PREFIX": "/api/v1",
    "OPENAPI_JSON_PATH": "openapi.json",
    "API_SPEC_OPTIONS": {
        "info": {"description": "Intake of support tickets; a worker routes each to Account, Payment or Other."}
    },
}


class ProblemApi(Api):
    ERROR_SCHEMA = ProblemSchema

    def _register_error_handlers(self) -> None:
        """api.problems.init_app installs the one app-wide handler; smorest's own JSON format must not answer."""

    def _register_responses(self) -> None:
        """smorest's standard error responses, documented as application/problem+json (its default is JSON)."""
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            content_type = self.DEFAULT_RESPONSE_CONTENT_TYPE
            if not (100 <= status < 200) and status not in (204, 304):
                response["schema"] = self.ERROR_SCHEMA
                content_type = PROBLEM_MIMETYPE if status >= 400 else content_type
            prepare_response(response, self.spec, content_type)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "Default error response", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, PROBLEM_MIMETYPE)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)


class ProblemBlueprint(Blueprint):
    ARGUMENTS_PARSER = ProblemParser()

    def arguments(self, schema: Any, *args: Any, **kwargs: Any) -> Any:
        """Schemas are instantiated here, once: given a schema class, webargs makes a new instance on every request
        (marshmallow deep-copies each declared field), a good part of what parsing costs. A schema instance keeps
        no state between loads, so one serves every request; the OpenAPI document names it after its class alike.
        """
        return super().arguments(resolve_schema_instance(schema), *args, **kwargs)
