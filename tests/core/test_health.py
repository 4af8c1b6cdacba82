from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from django.test import Client as HttpClient

from tests.conftest import wait_for


@pytest.mark.django_db
def test_healthz_answers_without_touching_dependencies(client: HttpClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["X-Request-ID"]


@pytest.mark.django_db
def test_readyz_reports_database_and_redis(client: HttpClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "redis": "ok"}


@pytest.mark.django_db
def test_readyz_is_503_when_redis_is_unreachable(client: HttpClient, settings: Any) -> None:
    from tools.devservers import free_port

    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["redis"] == "unreachable"
    assert response.json()["database"] == "ok"


@pytest.mark.worker
def test_a_real_worker_consumes_every_queue(celery_worker: Any, redis_client: Any) -> None:
    from apps.core.tasks import ping

    worker = celery_worker()
    sent = []
    for queue in ("realtime", "audience", "sends", "reporting"):
        key = f"ping:{queue}:{uuid.uuid4().hex}"
        sent.append(ping.apply_async(args=[key], queue=queue).id)
        wait_for(lambda key=key: redis_client.get(key) == b"pong", 15, f"a task on {queue}")
    # The worker's log lines are JSON and carry the id of the task they were written for.
    wait_for(lambda: all(task_id in worker.log() for task_id in sent), 10, "the worker to log the tasks")
    lines = [json.loads(line) for line in worker.log().splitlines() if line.startswith("{")]
    finished = {
        line["task_id"]
        for line in lines
        if line.get("task_name") == "core.ping" and "succeeded" in line["message"]
    }
    assert set(sent) <= finished
