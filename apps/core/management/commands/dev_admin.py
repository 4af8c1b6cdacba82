from __future__ import annotations

import os
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Creates the local admin user once and prints its credentials (used by `make run`)."

    def handle(self, *args: Any, **options: Any) -> None:
        user_model = get_user_model()
        if user_model.objects.filter(username="admin").exists():
            self.stdout.write("Admin user: admin (created on the first run; its password was printed then).")
            return
        password = os.environ.get("DEV_ADMIN_PASSWORD") or user_model.objects.make_random_password()  # type: ignore[attr-defined]
        user_model.objects.create_superuser("admin", "admin@localhost", password)
        self.stdout.write(self.style.SUCCESS(f"Created admin user: admin / {password}  (shown once)"))
