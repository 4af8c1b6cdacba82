"""Every outbound HTTP call goes through a session that always sets a timeout."""

from __future__ import annotations

import os
import urllib.request
from typing import Any

import requests
from requests.adapters import HTTPAdapter

DEFAULT_TIMEOUT_SECONDS = 30.0


class TimeoutSession(requests.Session):
    def __init__(self, timeout: float = DEFAULT_TIMEOUT_SECONDS, pool_maxsize: int = 20) -> None:
        super().__init__()
        self.default_timeout = timeout
        if not urllib.request.getproxies():
            # No proxy to honour: skip requests' environment lookups on every call (about a millisecond
            # each, which adds up over a million webhooks), keeping a CA bundle the environment names.
            self.trust_env = False
            bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
            if bundle:
                self.verify = bundle
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_maxsize, max_retries=0)
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.default_timeout)
        return super().request(method, url, *args, **kwargs)
