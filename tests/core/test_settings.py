from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GOOD = {
    "DJANGO_SETTINGS_MODULE": "config.settings.production",
    "DJANGO_SECRET_KEY": "x" * 50,
    "DATABASE_URL": "postgres://u:p@db.internal:5432/partner",
    "REDIS_URL": "redis://cache.internal:6379/0",
    "FIELD_ENCRYPTION_KEYS": "3xJtXWqYpH2v1m9Wv0fP2t3yqkQy1i4QnQj8bN1x1_0=",
    "PUBLIC_BASE_URL": "https://partner.example.com",
    "DJANGO_ALLOWED_HOSTS": "partner.example.com",
    "PATH": "/usr/bin:/bin",
}
PROBE = (
    "import django; django.setup(); from django.conf import settings; "
    "print(settings.SANDBOX_ENABLED, settings.DEBUG)"
)


def _setup(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROBE], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_production_starts_with_its_secrets_and_keeps_the_sandbox_off() -> None:
    result = _setup(GOOD)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]


def test_production_refuses_to_start_without_each_secret() -> None:
    for missing in (
        "DJANGO_SECRET_KEY",
        "DATABASE_URL",
        "REDIS_URL",
        "FIELD_ENCRYPTION_KEYS",
        "PUBLIC_BASE_URL",
    ):
        env = {k: v for k, v in GOOD.items() if k != missing}
        result = _setup(env)
        assert result.returncode != 0, missing
        assert "ImproperlyConfigured" in result.stderr, missing
        assert missing in result.stderr, missing


def test_production_refuses_the_development_encryption_key() -> None:
    from config.settings.base import DEVELOPMENT_ENCRYPTION_KEY

    result = _setup({**GOOD, "FIELD_ENCRYPTION_KEYS": DEVELOPMENT_ENCRYPTION_KEY})
    assert result.returncode != 0
    assert "FIELD_ENCRYPTION_KEYS must be set to keys of your own" in result.stderr
