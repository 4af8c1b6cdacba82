"""Errors from talking to Optimove, split into retryable and terminal."""

from __future__ import annotations

from apps.core.errors import RetryableError, TerminalError


class OptimoveError(Exception):
    """Base for every Optimove failure. `status` is the HTTP status when there was an answer."""

    retryable: bool = False

    def __init__(self, message: str, *, status: int | None = None, function: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.function = function


class OptimoveRetryableError(OptimoveError, RetryableError):
    """Connection error, timeout, 429 or 5xx that outlived the client's own retries."""

    retryable = True


class OptimoveTerminalError(OptimoveError, TerminalError):
    """A 400, 404, 405 or a malformed answer: asking again will not help."""

    retryable = False


class OptimoveAuthError(OptimoveTerminalError):
    """401, or a 403 that a fresh login did not cure: the credentials are wrong."""


class OptimoveRateLimited(OptimoveRetryableError):
    """429 from Optimove after the client's retries."""
