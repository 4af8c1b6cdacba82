"""The platform's small error family: every outbound failure is either retryable or terminal."""


class PlatformError(Exception):
    """Base of the errors the platform raises on purpose."""

    retryable: bool = False


class RetryableError(PlatformError):
    """Can heal by itself: a timeout, a dropped connection, a 429 or a 5xx."""

    retryable = True


class TerminalError(PlatformError):
    """Will fail the same way again: bad input, bad credentials, a 4xx."""

    retryable = False
