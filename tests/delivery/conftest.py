"""Fixtures shared by the provider callback tests."""

from __future__ import annotations

import pytest
from django.test import Client as HttpClient

from apps.clients.models import Client
from tests.delivery.callbacks_support import make_client


@pytest.fixture
def client() -> HttpClient:
    """Providers post without a CSRF token: the callbacks must not need one."""
    return HttpClient(enforce_csrf_checks=True)


@pytest.fixture
def acme(db: None) -> Client:
    return make_client("acme")
