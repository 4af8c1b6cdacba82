"""The project's own templates (templates/ at the top level) override Django's."""

from __future__ import annotations

from typing import Any

from django.test import Client as HttpClient


def test_the_admin_says_which_platform_it_is(client: HttpClient, admin_client: HttpClient, db: Any) -> None:
    login = client.get("/admin/login/").content.decode()
    assert "<title>Log in | Optimove execution partner</title>" in login
    assert "Django administration" not in login
    index = admin_client.get("/admin/").content.decode()
    assert '<div id="site-name"><a href="/admin/">Optimove execution partner</a></div>' in index
