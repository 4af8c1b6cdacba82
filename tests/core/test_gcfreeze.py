"""Web and worker processes freeze what exists once start-up is over, so that Python's full garbage
collections walk only what the process made since (apps.core.gcfreeze): unfrozen, a full collection in a
web process walked every object Django and the libraries had made and held the GIL 76 to 92 ms under load."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.core.test_settings import GOOD

ROOT = Path(__file__).resolve().parents[2]

# Prints, for the process's state after `START`: objects frozen, and objects a full collection walks.
REPORT = "import gc, json; print(json.dumps([gc.get_freeze_count(), len(gc.get_objects(generation=2))]))"


def _after(start: str) -> tuple[int, int]:
    result = subprocess.run(
        [sys.executable, "-c", f"{start}\n{REPORT}"],
        env=GOOD,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    frozen, walked = json.loads(result.stdout.splitlines()[-1])
    return frozen, walked


def test_the_web_application_freezes_its_start_up_objects() -> None:
    frozen, walked = _after("from config.wsgi import application")
    assert frozen > 50_000
    assert walked < frozen / 20


def test_a_celery_worker_freezes_its_start_up_objects_before_its_pool_forks() -> None:
    # worker_init is what a worker's main process sends once set up, before it forks its pool.
    start = (
        "import django; django.setup()\n"
        "from celery.signals import worker_init\n"
        "from config.celery import app\n"
        "worker_init.send(sender=None)"
    )
    frozen, walked = _after(start)
    assert frozen > 50_000
    assert walked < frozen / 20


def test_without_the_freeze_a_full_collection_walks_every_start_up_object() -> None:
    # The measure above can tell: the same start-up without the worker's signal freezes nothing.
    frozen, walked = _after("import django; django.setup()\nfrom config.celery import app")
    assert frozen == 0
    assert walked > 50_000
