"""The test suite. A throwaway PostgreSQL and Redis are started on free ports unless given."""

import os

if "DATABASE_URL" not in os.environ or "REDIS_URL" not in os.environ:
    # Started once by the pytest process; worker and server subprocesses inherit the addresses.
    from tools.devservers import start_test_services

    start_test_services()

from .base import *  # noqa: F403
from .base import env

DEBUG = False
SANDBOX_ENABLED = True
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
FIELD_ENCRYPTION_KEYS = env.list(
    "FIELD_ENCRYPTION_KEYS", default=["Yx3sVQkPKPV2iKQ2o6CQk8kx0yqMZxG6C7oEw3y0yk8="]
)
OPTIMOVE_BACKOFF_BASE_SECONDS = env.float("OPTIMOVE_BACKOFF_BASE_SECONDS", default=0.01)
OPTIMOVE_BACKOFF_MAX_SECONDS = env.float("OPTIMOVE_BACKOFF_MAX_SECONDS", default=0.05)
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
