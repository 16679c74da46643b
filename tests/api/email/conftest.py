"""Fixtures for the e-mail webhooks: an app with credentials configured and its client.

The helpers the e-mail test modules import (fixtures on disk, signed Mailgun forms, the inbound log) are in
tests/support/email_webhooks.py.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.support.email_webhooks import MAILGUN_KEY, PASSWORD, USER


@pytest.fixture
def email_app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(email_webhook_user=USER, email_webhook_password=PASSWORD, mailgun_signing_key=MAILGUN_KEY)


@pytest.fixture
def email_client(email_app: Flask) -> FlaskClient:
    return email_app.test_client()
