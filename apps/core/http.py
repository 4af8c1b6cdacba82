"""Every outbound HTTP call goes through a session that always sets a timeout."""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from apps.core.threads import process_kept

DEFAULT_TIMEOUT_SECONDS = 30.0


class TimeoutSession(requests.Session):
    def __init__(
        self, timeout: float = DEFAULT_TIMEOUT_SECONDS, pool_maxsize: int = 20, pool_connections: int = 4
    ) -> None:
        super().__init__()
        self.default_timeout = timeout
        if not urllib.request.getproxies():
            # No proxy to honour: skip requests' environment lookups on every call (about a millisecond
            # each, which adds up over a million webhooks), keeping a CA bundle the environment names.
            self.trust_env = False
            bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
            if bundle:
                self.verify = bundle
        self._environments: dict[str, dict[str, Any]] = {}
        adapter = HTTPAdapter(pool_connections=pool_connections, pool_maxsize=pool_maxsize, max_retries=0)
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.default_timeout)
        return super().request(method, url, *args, **kwargs)

    def post_unredirected(
        self, url: str, *, data: bytes, headers: Mapping[str, str], timeout: float | None = None
    ) -> requests.Response:
        """A POST that never follows a redirect, sent straight through the mounted adapter: the same
        pooled connections, TLS verification and proxies as `post()`, without the session's per-call
        cookie, hook and redirect machinery, about a third of a request's CPU on a fast network. For
        senders of many requests (webhooks). Raises what `post()` raises."""
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
        environment = self._environments.get(origin)
        if environment is None:
            if len(self._environments) > 1000:  # per-customer webhook URLs: keep the cache bounded
                self._environments.clear()
            # Proxies (NO_PROXY is per host) and the CA bundle, as post() would find them.
            environment = dict(self.merge_environment_settings(origin, {}, None, self.verify, self.cert))
            self._environments[origin] = environment
        prepared = requests.PreparedRequest()
        prepared.prepare(method="POST", url=url, headers={**self.headers, **headers}, data=data)
        return self.get_adapter(url).send(prepared, timeout=timeout or self.default_timeout, **environment)


# Hosts whose idle keep-alive connections a shared session keeps (per host, up to its pool size).
SHARED_SESSION_HOSTS = 64


def shared_session(*, timeout: float, pool_maxsize: int) -> TimeoutSession:
    """A session for the life of the process (per timeout and pool size), so keep-alive connections
    outlive one send batch: a real-time trigger, often a batch of one, would otherwise pay a TCP (and
    TLS) handshake, on both sides, every time. urllib3 checks a pooled connection before reusing it and
    opens a new one when the server has closed it. Never close it; a forked child gets its own."""
    return process_kept(
        ("http-session", timeout, pool_maxsize),
        lambda: TimeoutSession(
            timeout=timeout, pool_maxsize=pool_maxsize, pool_connections=SHARED_SESSION_HOSTS
        ),
    )
