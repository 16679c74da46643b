"""Intake: the JSON API (`tickets`, documented in OpenAPI) and the customers' web form (`web`)."""
